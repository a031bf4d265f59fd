"""Run config: unknown keys refused by name, paths resolved against the config file."""

from pathlib import Path

import pytest

from analysis.config import load_config, parse_config
from analysis.errors import ConfigError

MINIMAL = {"name": "t1", "data": "log.csv"}


def test_minimal_config_gets_documented_defaults():
    cfg = parse_config(dict(MINIMAL))
    assert cfg.control == "usual_care"
    assert cfg.disclosure_threshold == 11
    assert cfg.scales["pain_score"].max == 10
    assert cfg.models.pain.random == "slope"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({**MINIMAL, "colums": {}}, "unknown key 'colums'"),
        ({**MINIMAL, "models": {"pain": {"randm": "slope"}}}, "unknown key 'models.pain.randm'"),
        ({"data": "log.csv"}, "missing required key 'name'"),
        ({**MINIMAL, "control": "waiting_list"}, "control 'waiting_list' is not one of"),
        ({**MINIMAL, "columns": {"pain": "NPRS"}}, "unknown contract column(s) ['pain']"),
        ({**MINIMAL, "scales": {"pain_score": {"min": 10, "max": 0}}}, "min (10.0) must be below max"),
        ({**MINIMAL, "time_unit": "months"}, "time_unit"),
        ({**MINIMAL, "disclosure_threshold": 0}, "disclosure_threshold"),
    ],
)
def test_bad_config_names_the_key(raw, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, source="run.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("run.yaml")


def test_relative_paths_resolve_against_config_folder(tmp_path: Path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.yaml"
    path.write_text("name: t\ndata: ../data/log.csv\nclaims: claims.yaml\n")
    cfg = load_config(path)
    assert cfg.data == tmp_path / "cfg" / ".." / "data" / "log.csv"
    assert cfg.claims == tmp_path / "cfg" / "claims.yaml"


def test_invalid_yaml_names_line(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("name: t\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"run.yaml: line \d+, column \d+: invalid YAML"):
        load_config(path)


def test_yaml_python_tags_are_refused(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hi']\ndata: x.csv\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
