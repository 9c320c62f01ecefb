"""The `aiops` command: serve, demo, worker, config validate, score, forecast, backtest, runbook validate|run, executor, version."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiops import __version__

if TYPE_CHECKING:
    from aiops.settings import Settings

# Settings (pydantic, and through them the detector registry and numba) are imported by the commands
# that need them, so `aiops forecast` and `aiops version` start in a fraction of a second.

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    from aiops.config_loader import load_settings

    path = args.config or os.environ.get("AIOPS_CONFIG")
    settings = load_settings(path)
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    logging_ = {k: v for k, v in (("format", args.log_format), ("level", args.log_level)) if v is not None}
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(update=server),
            "logging": settings.logging.model_copy(update=logging_),
        }
    )


def _serve(args: argparse.Namespace, demo: bool) -> int:
    import contextlib

    import uvicorn

    from aiops.api import create_app
    from aiops.logs import configure_logging
    from aiops.service import Service

    settings = _settings(args)
    configure_logging(settings.logging.format, settings.logging.level)
    with contextlib.ExitStack() as stack:
        runtime = None
        if demo:
            from aiops.demo.runtime import DemoRuntime

            runtime = stack.enter_context(DemoRuntime(settings))
            settings = runtime.settings(settings)
        service = Service(settings, config_path=args.config or os.environ.get("AIOPS_CONFIG"))
        hooks = [lambda app: _reload_on_sighup(service)]
        if runtime is not None:
            from aiops.demo.feeder import start_demo_feeder

            hooks.append(lambda app: start_demo_feeder(settings, runtime.simulator))
        app = create_app(service, on_started=hooks, demo=runtime)
        uvicorn.run(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=30,  # longer than clients' usual 5-15 s between requests: no race on a closing connection
        )
    return 0


def _reload_on_sighup(service) -> Callable[[], None]:
    """SIGHUP re-reads the settings file, as daemons do; a bad file is logged and changes nothing."""
    import asyncio
    import logging

    from aiops.config_loader import ConfigError

    log = logging.getLogger("aiops.cli")

    def reload() -> None:
        try:
            service.reload()
        except ConfigError as exc:
            log.error("reload refused, settings unchanged:\n%s", exc)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload))
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


def _validate(args: argparse.Namespace) -> int:
    from aiops.config_loader import ConfigError, load_settings

    try:
        load_settings(args.file, environ={})
    except ConfigError as exc:
        return _invalid(exc)
    print(f"{args.file}: valid")
    return 0


def _invalid(exc) -> int:
    """Print every issue of a ConfigError (file:line: field: message) and return the exit status 1."""
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    return 1


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from aiops.config_loader import load_settings
    from aiops.replay import DataFileError, read_csv_series, score_series
    from detectors.registry import DetectorNotFound, default_registry

    registry = default_registry()
    if args.config is not None:
        spec = load_settings(args.config).detection.default
        name, params = (args.detector, {}) if args.detector and args.detector != spec.detector else (spec.detector, spec.params)
    else:
        name, params = args.detector or "ensemble", {}
    try:
        detector = registry.create(name, **params)
        series = read_csv_series(args.input)
    except (DetectorNotFound, DataFileError, OSError) as exc:
        print(f"aiops score: {exc}", file=sys.stderr)
        return 2
    scores = score_series(detector, series).score
    np.savetxt(sys.stdout, scores, fmt="%.6g")
    return 0


def _forecast(args: argparse.Namespace) -> int:
    import time

    from aiops.replay import DataFileError, read_csv_series
    from forecasting import ModelNotFound, ModelUnavailable, forecast

    try:
        series = read_csv_series(args.input)
        started = time.perf_counter()
        result = forecast(series.value, args.horizon, ts=series.ts, model=args.model, level=args.level,
                          kind=args.kind)  # fmt: skip
        elapsed = time.perf_counter() - started
    except (DataFileError, OSError, ModelNotFound, ModelUnavailable, ValueError) as exc:
        print(f"aiops forecast: {exc}", file=sys.stderr)
        return 2
    if not result.ok:
        print(f"aiops forecast: {args.input}: {result.reason}", file=sys.stderr)
        return 2
    lines = [f"{y:.10g},{lo:.10g},{hi:.10g}" for y, lo, hi in zip(result.yhat, result.lower, result.upper)]
    sys.stdout.write("\n".join(lines) + "\n")
    print(f"fit_seconds={elapsed:.4f}", file=sys.stderr)
    print(f"model={result.model} backtest_mae={result.backtest_error:.6g}", file=sys.stderr)
    return 0


def _logs_parse(args: argparse.Namespace) -> int:
    from aiops.logparse import parse_lines, read_lines

    try:
        parse_lines(read_lines(sys.stdin.buffer), sys.stdout, args.log_format)
    except ValueError as exc:  # an unusable --format
        print(f"aiops logs parse: {exc}", file=sys.stderr)
        return 2
    return 0


def _backtest(args: argparse.Namespace) -> int:
    import json as json_module

    from aiops.backtest import read_points, run_backtest
    from aiops.config_loader import load_settings
    from aiops.replay import DataFileError

    settings = load_settings(args.config)
    try:
        data = read_points(args.data)
    except (DataFileError, OSError) as exc:
        print(f"aiops backtest: {exc}", file=sys.stderr)
        return 2
    report = run_backtest(settings, data)
    if args.json:
        print(json_module.dumps(report.as_dict(), indent=2))
        return 0
    print(f"{report.points} points of {report.series} series: {report.anomalies} anomalies, {len(report.alerts)} alerts")
    for a in report.alerts[: args.limit]:
        print(f"  {a.severity:<8} {a.series}  {_iso(a.first_ts)} .. {_iso(a.last_ts)}  "
              f"{a.anomalies} anomalies, max score {a.max_score:.3f}")
    if len(report.alerts) > args.limit:
        print(f"  … {len(report.alerts) - args.limit} more (--limit, or --json for all)")
    if report.windows is not None:
        precision = "n/a" if report.precision is None else f"{report.precision:.3f}"
        nab = "n/a" if report.nab_score is None else f"{report.nab_score:.2f}"
        print(f"labelled windows: {report.windows_detected}/{report.windows} detected (recall {report.recall:.3f}); "
              f"precision of anomalous points {precision}; NAB-style score (standard profile) {nab}")
    return 0


def _runbook_validate(args: argparse.Namespace) -> int:
    from aiops.config_loader import ConfigError, load_runbook_file

    try:
        found = load_runbook_file(args.file)
    except ConfigError as exc:
        return _invalid(exc)
    print(f"{args.file}: valid ({', '.join(rb.name for rb in found.runbooks) or 'no runbooks'})")
    return 0


def _runbook_run(args: argparse.Namespace) -> int:
    """Plan a run by hand; a dry run is advanced here and its story printed, a real one is left to the executors."""
    import getpass
    import json as json_module
    import time

    from sqlalchemy import select

    from aiops.executions import FINAL, Planner, steps_of
    from aiops.executor import Executor
    from aiops.store import StoreEngine
    from aiops.store.schema import alerts, executions

    settings = _settings_from(args.config)
    planner = Planner(settings.remediation)
    runbook = planner.runbooks.get(args.name)
    if runbook is None:
        print(f"aiops runbook run: no runbook {args.name!r} (configured: {', '.join(planner.runbooks) or 'none'})",
              file=sys.stderr)
        return 2
    store = StoreEngine(settings.store_url)
    store.migrate()
    with store.begin() as conn:
        alert = conn.execute(select(alerts).where(alerts.c.id == args.alert)).first()
        if alert is None:
            print(f"aiops runbook run: alert {args.alert} not found in {store.dialect} store", file=sys.stderr)
            return 2
        execution_id, decision = planner.create(conn, runbook, dict(alert._mapping), time.time(),
                                                requested_by=f"cli:{getpass.getuser()}", force_dry_run=args.dry_run)
    if execution_id is None:
        print(f"aiops runbook run: {args.name} may not run now: {decision.reason}", file=sys.stderr)
        return 1
    if args.dry_run:
        executor = Executor(store, settings)
        while executor.run_once():
            pass
    with store.begin() as conn:
        row = dict(conn.execute(select(executions).where(executions.c.id == execution_id)).first()._mapping)
        row["steps"] = steps_of(conn, execution_id)
    store.close()
    print(json_module.dumps(row, indent=2, default=str))
    if not args.dry_run and row["state"] not in FINAL:
        print(f"execution {execution_id} is {row['state']}: the service's executor will run it", file=sys.stderr)
    return 0


def _executor(args: argparse.Namespace) -> int:
    """Only the executor: more processes claiming executions from the same store."""
    import threading

    from aiops.logs import configure_logging
    from aiops.service import Service

    settings = _settings_from(args.config)
    configure_logging(settings.logging.format, settings.logging.level)
    service = Service(settings)
    service.start_executor_only()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    service.stop_executor_only()
    return 0


def _worker(args: argparse.Namespace) -> int:
    """A Kafka consumer-group member running detection and alerting for the partitions it owns."""
    import logging
    import socket
    import threading

    from aiops.logs import configure_logging
    from aiops.worker import Worker, WorkerError
    from ingest.kafka_bus import KafkaBusError

    settings = _settings_from(args.config)
    configure_logging(settings.logging.format, settings.logging.level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = Worker(settings, client_id=f"aiops-worker-{socket.gethostname()}-{os.getpid()}")
    try:
        worker.run(stop)
    except (KafkaBusError, WorkerError) as exc:
        logging.getLogger("aiops.cli").error("aiops worker: %s", exc)
        return 1
    return 0


def _settings_from(config: Path | None) -> Settings:
    from aiops.config_loader import load_settings

    return load_settings(config or os.environ.get("AIOPS_CONFIG"))


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (default: $AIOPS_CONFIG, else built-in defaults)")
    parser.add_argument("--host", help="address to listen on (overrides server.host)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    parser.add_argument("--log-format", choices=["text", "json"], help="log as text or as one JSON object per line")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiops", description="AIOps service: detect, alert, heal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (API, ingest, detection, alerting)",
                           description="Run the service: HTTP API and ingest, the detection pipeline and alerting.")
    _add_server_options(serve)
    serve.set_defaults(run=lambda a: _serve(a, demo=False))

    demo = sub.add_parser("demo", help="run the service fed by the built-in simulated fleet",
                          description="Run the service with the built-in demo environment: a simulated fleet that "
                          "feeds the ingest API and injects incidents on a schedule, so alerts appear within a minute.")
    _add_server_options(demo)
    demo.set_defaults(run=lambda a: _serve(a, demo=True))

    config = sub.add_parser("config", help="work with settings files", description="Work with settings files.")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = config_sub.add_parser("validate", help="check a settings file; exit 1 and list every error if invalid",
                                     description="Check a settings file. Prints every error with file, line and "
                                     "field, and exits 1; exits 0 when the file is valid.")
    validate.add_argument("file", type=Path)
    validate.set_defaults(run=_validate)

    score = sub.add_parser(
        "score",
        help="print one anomaly score in [0,1] per row of a timestamp,value CSV",
        description="Stream a CSV with header timestamp,value through a detector (default: the default "
        "ensemble) and print one score in [0,1] per data row, in order. Causal: a row's score uses only "
        "the rows before it and itself.",
    )
    score.add_argument("--input", required=True, type=Path, help="CSV with header timestamp,value")
    score.add_argument("--detector", help="a detector name (default: ensemble, or the config's default)")
    score.add_argument("--config", type=Path, help="settings file whose detection.default is used")
    score.set_defaults(run=_score)

    fc = sub.add_parser(
        "forecast",
        help="print H lines yhat,lower,upper forecasting a timestamp,value CSV",
        description="Forecast a CSV with header timestamp,value (a regular grid) --horizon steps ahead and "
        "print one line yhat,lower,upper per step, in order; lower and upper bound the central --level "
        "interval (default 80%%). The default model chooses per series by rolling-origin backtest. Prints "
        "fit_seconds=X and the model used on stderr.",
    )
    fc.add_argument("--input", required=True, type=Path, help="CSV with header timestamp,value")
    fc.add_argument("--horizon", required=True, type=int, help="steps to forecast")
    fc.add_argument("--model", default="auto", help="auto (default), auto_ets, a fast-path candidate (snaive, drift7, hw1, ...), "
                    "holt_winters, ets or prophet")
    fc.add_argument("--level", type=float, default=0.8, help="central interval probability (default 0.8)")
    fc.add_argument("--kind", choices=["gauge", "counter"], default="gauge",
                    help="counter: forecast the per-second rate (default gauge)")
    fc.set_defaults(run=_forecast)

    backtest = sub.add_parser(
        "backtest",
        help="replay recorded data through a config; report the alerts it would raise",
        description="Replay recorded data (a timestamp,value[,label] CSV, or JSON lines of points "
        "{name, labels, ts, value[, label]}) through the detection and alerting settings of a config, "
        "and report the alerts it would raise; where the data has labels, also window recall, precision "
        "and a NAB-style score. Preview a change before applying it.",
    )
    backtest.add_argument("--config", type=Path, help="settings file (default: built-in defaults)")
    backtest.add_argument("--data", required=True, type=Path, help="CSV or JSON-lines file of points")
    backtest.add_argument("--json", action="store_true", help="print the whole report as JSON")
    backtest.add_argument("--limit", type=int, default=20, help="alerts to list (default 20)")
    backtest.set_defaults(run=_backtest)

    runbook = sub.add_parser("runbook", help="validate or run runbooks", description="Validate or run runbooks.")
    runbook_sub = runbook.add_subparsers(dest="runbook_command", required=True, metavar="ACTION")
    rb_validate = runbook_sub.add_parser("validate", help="check a runbook file (runbooks: [...]); exit 1 on errors",
                                         description="Check a runbook file. Prints every error with file, line and "
                                         "field and exits 1; exits 0 when it is valid.")
    rb_validate.add_argument("file", type=Path)
    rb_validate.set_defaults(run=_runbook_validate)
    rb_run = runbook_sub.add_parser("run", help="run a configured runbook for an alert (guards apply)",
                                    description="Plan an execution of a configured runbook for an alert, as if the "
                                    "alert had matched it; guards apply. With --dry-run it is carried out here with "
                                    "no action taken and its story printed; otherwise the service's executors run it.")
    rb_run.add_argument("name")
    rb_run.add_argument("--alert", type=int, required=True, help="the alert id whose context the runbook gets")
    rb_run.add_argument("--dry-run", action="store_true", help="record what would be done; act on nothing")
    rb_run.add_argument("--config", type=Path, help="settings file (default: $AIOPS_CONFIG)")
    rb_run.set_defaults(run=_runbook_run)

    executor = sub.add_parser("executor", help="run only the remediation executor (scale-out, failover)",
                              description="Run only the remediation executor against the configured store. Any "
                              "number of executors (and services) may share a store: each execution is claimed by "
                              "one of them, and taken over if its executor dies.")
    executor.add_argument("--config", type=Path, help="settings file (default: $AIOPS_CONFIG)")
    executor.set_defaults(run=_executor)

    worker = sub.add_parser("worker", help="consume metrics from Kafka and detect (scale-out)",
                            description="Join the Kafka consumer group kafka.group, read the metrics topic (and "
                            "kafka.mappings topics), run detection and alerting for the partitions this worker "
                            "owns, store anomalies and alerts, then commit. Partition state is checkpointed to the "
                            "store and follows partitions across workers. SIGTERM commits and checkpoints, then "
                            "leaves the group. See docs/scaling.md.")
    worker.add_argument("--config", type=Path, help="settings file (default: $AIOPS_CONFIG)")
    worker.set_defaults(run=_worker)

    logs = sub.add_parser("logs", help="work with log lines", description="Work with log lines.")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")
    parse = logs_sub.add_parser(
        "parse",
        help="print one template per log line read on stdin (variable parts as <*>)",
        description="Read log lines on stdin (LF or CRLF) and print, for each, its template with variable "
        "parts written <*>, in order, exactly one line per input line. Lines are mined as one stream "
        "(detectors.logtemplates) and each is printed with its template as it stands after all lines "
        "were seen. With --format, each line's header is split off first and only the message is mined.",
    )
    parse.add_argument("--format", dest="log_format",
                       help="Loghub-style header format, e.g. '<Date> <Time> <Level> <Component>: <Content>' "
                       "(default: each line is the message)")
    parse.set_defaults(run=_logs_parse)

    version = sub.add_parser("version", help="print the version", description="Print the version of aiops.")
    version.set_defaults(run=lambda a: print(f"aiops {__version__}") or 0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("forecast", "logs", "version"):  # no settings involved
        return args.run(args)
    from aiops.config_loader import ConfigError

    try:
        return args.run(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"config error: {issue}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
