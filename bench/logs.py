"""Log template mining throughput, in process: lines/s through `TemplateMiner`, and drain3 if present.

Two workloads from the loghub-dev lines (the Content column of the 8 DEV systems, 16,000 lines):
"concatenated", each line once (about 7,300 distinct messages: mostly masking and tree search), and
"repeated", the lines repeated and shuffled to --lines with a fixed seed (as `loghub_run.py --stream`
does; here the miner's message cache serves most lines). drain3 (PyPI, MIT) is timed on the same
lines in the same run when it can be imported, with its generic masks as in the reference script;
otherwise only our figures are printed. The end-to-end command, start-up included, is measured by
the benchmark's own runner (docs/logs-traces.md gives the command).

    .venv/bin/python bench/logs.py [--data /work/shared/bench/loghub-dev/data] [--lines 200000]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from detectors.logtemplates import TemplateMiner  # noqa: E402

DEFAULT_DATA = Path("/work/shared/bench/loghub-dev/data")


def _load(data: Path) -> list[str]:
    lines: list[str] = []
    for structured in sorted(data.glob("*/*_2k.log_structured.csv")):
        with open(structured, encoding="utf-8", newline="") as fh:
            lines.extend(row["Content"] for row in csv.DictReader(fh))
    return lines


def _ours(lines: list[str]) -> tuple[float, int]:
    miner = TemplateMiner()
    started = time.perf_counter()
    miner.add_many(lines)
    return len(lines) / (time.perf_counter() - started), len(miner)


def _drain3(lines: list[str]) -> tuple[float, int] | None:
    try:
        from drain3 import TemplateMiner as Drain3
        from drain3.masking import MaskingInstruction
        from drain3.template_miner_config import TemplateMinerConfig
    except ImportError:
        return None
    config = TemplateMinerConfig()  # as loghub-dev's drain3_reference.py --preset generic
    config.drain_sim_th, config.drain_depth = 0.4, 4
    config.profiling_enabled = False
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.masking_instructions = [
        MaskingInstruction(pattern, "*") for pattern in (
            r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)",
            r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)",
            r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)",
            r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)",
            r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)",
            r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)",
        )]
    miner = Drain3(persistence_handler=None, config=config)
    started = time.perf_counter()
    for line in lines:
        miner.add_log_message(line)
    return len(lines) / (time.perf_counter() - started), len({c.get_template() for c in miner.drain.clusters})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="loghub-dev data folder")
    parser.add_argument("--lines", type=int, default=200_000, help="length of the repeated stream")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = _load(args.data)
    if not base:
        print(f"no <D>/<D>_2k.log_structured.csv under {args.data}", file=sys.stderr)
        return 3
    repeated = (base * (args.lines // len(base) + 1))[:args.lines]
    random.Random(args.seed).shuffle(repeated)
    print(f"{len(base)} lines ({len(set(base))} distinct) from {args.data}")
    for name, lines in (("concatenated", base), (f"repeated to {len(repeated)}", repeated)):
        ours, n_ours = _ours(lines)
        ref = _drain3(lines)
        text = f"{name:22s} ours {ours:>10,.0f} lines/s ({n_ours} templates)"
        if ref is not None:
            text += f"   drain3 {ref[0]:>9,.0f} lines/s ({ref[1]} templates)   ratio {ours / ref[0]:.2f}x"
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
