"""Settings: the annotated example is valid; every error names file, line and field; env overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiops.config_loader import ConfigError, load_settings
from aiops.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aiops.yaml"
    path.write_text(text)
    return path


def test_annotated_example_is_valid_and_equals_the_defaults():
    assert load_settings(REPO / "aiops.yaml", environ={}) == Settings()


def test_every_error_names_file_line_and_field(tmp_path):
    path = _write(
        tmp_path,
        "server:\n"
        "  port: 70000\n"
        "  hots: x\n"
        "detection:\n"
        "  default:\n"
        "    params: {alpha: fast}\n"
        "alerting:\n"
        "  warning_score: 0.99\n"
        "  critical_score: 0.5\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    found = {(i.line, i.path) for i in err.value.issues}
    assert found == {(2, "server.port"), (3, "server.hots"), (6, "detection.default.params"), (7, "alerting")}
    text = str(err.value)
    assert f"{path}:2: server.port: Input should be less than or equal to 65535 (got 70000)" in text
    assert "unknown field" in text and "critical_score (0.5) must not be below warning_score (0.99)" in text


def test_yaml_syntax_error_and_duplicate_keys_have_lines(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "server:\n  port: [1,\n"), environ={})
    assert err.value.issues[0].line is not None and "invalid YAML" in err.value.issues[0].message
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "server:\n  port: 1\n  port: 2\n"), environ={})
    assert [(i.line, i.path, i.message) for i in err.value.issues] == [(3, "server.port", "duplicate key")]


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "- a\n- b\n"), environ={})
    assert err.value.issues[0].line == 1


def test_environment_overrides_file_and_its_errors_name_the_variable(tmp_path):
    path = _write(tmp_path, "server:\n  port: 9000\n")
    settings = load_settings(path, environ={"AIOPS_SERVER__PORT": "9100", "AIOPS_LOGGING__FORMAT": "json"})
    assert settings.server.port == 9100 and settings.logging.format == "json"
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"AIOPS_INGEST__MAX_SERIES": "-1"})
    issue = err.value.issues[0]
    assert (issue.source, issue.line, issue.path) == ("AIOPS_INGEST__MAX_SERIES", None, "ingest.max_series")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_default_store_is_an_sqlite_file_under_data_dir():
    settings = load_settings(None, environ={"AIOPS_DATA_DIR": "/var/lib/aiops"})
    assert settings.store_url == "sqlite:////var/lib/aiops/aiops.db"


def test_cli_validate_exits_0_or_prints_every_error_and_exits_1(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "aiops", "config", "validate", str(REPO / "aiops.yaml")], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = _write(tmp_path, "server:\n  port: -1\nstore:\n  urll: x\n")
    result = subprocess.run([sys.executable, "-m", "aiops", "config", "validate", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{bad}:2: server.port" in result.stderr and f"{bad}:4: store.urll" in result.stderr
