"""The `aiops` command: every subcommand says what it does; version; JSON logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from aiops import __version__
from aiops.cli import build_parser
from aiops.logs import JsonFormatter


@pytest.mark.parametrize("argv", [[], ["serve"], ["demo"], ["config"], ["config", "validate"], ["logs"], ["logs", "parse"],
                                  ["version"]])
def test_help_of_every_command_says_what_it_does(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: aiops" in text and len(text.splitlines()) >= 3


def test_version():
    out = subprocess.run([sys.executable, "-m", "aiops", "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"aiops {__version__}"


def test_json_log_lines_carry_message_level_and_extra_fields():
    record = logging.LogRecord("aiops.x", logging.INFO, __file__, 1, "alert %s", ("opened",), None)
    record.alert_id = 7
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "alert opened" and entry["level"] == "info" and entry["alert_id"] == 7
    assert entry["logger"] == "aiops.x" and entry["ts"].endswith("Z")


def test_serve_with_an_invalid_config_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "aiops.yaml"
    bad.write_text("server:\n  prot: 1\n")
    out = subprocess.run([sys.executable, "-m", "aiops", "serve", "--config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and f"{bad}:2: server.prot" in out.stderr


def test_sighup_reloads_the_settings_file(tmp_path):
    import os
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "aiops.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiops", "serve", "--config", str(config), "--port", str(port), "--log-format", "json"],
            stderr=out, stdout=out, env={**os.environ},
        )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        config.write_text(f"data_dir: {tmp_path}\ndetection:\n  default:\n    detector: robust_mad\n")
        proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "settings reloaded" in log.read_text():
                break
            time.sleep(0.1)
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        reloaded = [e for e in entries if e["message"] == "settings reloaded"]
        assert reloaded and reloaded[0]["new_detectors"] == 2 and reloaded[0]["kept_detectors"] == 0  # and its upward twin for traces
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(20)
