"""Run config: unknown keys refused by name, paths resolved against the config file."""

from pathlib import Path

import re

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
        ({**MINIMAL, "time_unit": "fortnights"}, "time_unit"),
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


# --- outcomes: metadata and design ----------------------------------------------------------------
def test_outcome_metadata_defaults_reproduce_the_clinic_outcomes():
    from analysis.config import outcome_meta

    cfg = parse_config({"name": "x", "data": "log.csv"})
    pain = outcome_meta(cfg, "pain_score")
    assert (pain.label, pain.better, pain.mcid.points, pain.mcid.percent) == ("Pain", "lower", 2.0, 30.0)
    assert (pain.range.min, pain.range.max) == (0.0, 10.0)
    assert outcome_meta(cfg, "strength").better == "higher"
    assert cfg.design == "observational"


def test_outcome_metadata_overrides_merge_over_defaults():
    from analysis.config import outcome_meta

    cfg = parse_config({"name": "x", "data": "log.csv", "design": "randomised",
                        "scales": {"pain_score": {"min": 0, "max": 100}},
                        "models": {"strength": {"unit": "kg"}},
                        "outcomes": {"pain_score": {"label": "Throat pain", "mcid": {"percent": 20}},
                                     "FEV1": {"label": "FEV1", "unit": "L", "better": "higher",
                                              "mcid": 0.1}}})
    pain = outcome_meta(cfg, "pain_score")
    assert (pain.label, pain.better, pain.mcid.points, pain.mcid.percent) == ("Throat pain", "lower", None, 20.0)
    assert pain.range.max == 100.0
    fev = outcome_meta(cfg, "FEV1")
    assert (fev.unit, fev.better, fev.mcid.points, fev.kind) == ("L", "higher", 0.1, "continuous")
    assert outcome_meta(cfg, "strength").unit == "kg"
    assert outcome_meta(cfg, "other").better is None and cfg.design == "randomised"


@pytest.mark.parametrize("outcomes, message", [
    ({"p": {"mcid": {}}}, "outcomes.p.mcid: Value error, give points, percent or both"),
    ({"p": {"lable": "x"}}, "unknown key 'outcomes.p.lable'"),
    ({"p": {"better": "up"}}, "outcomes.p.better"),
    ({"p": {"mcid": {"percent": 130}}}, "outcomes.p.mcid.percent"),
])
def test_bad_outcome_metadata_is_refused_by_key(outcomes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"name": "x", "data": "log.csv", "outcomes": outcomes})


def test_unknown_design_is_refused():
    with pytest.raises(ConfigError, match="design"):
        parse_config({"name": "x", "data": "log.csv", "design": "quasi"})
