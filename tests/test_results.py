"""results.json is deterministic: rounded numbers, sorted keys, fragments merged by dotted name."""

import json
import math

import numpy as np
import pandas as pd

from analysis.results import dumps, merge_fragments, to_jsonable, write_json
from analysis.run.verify import diff_results, flatten


def test_numbers_are_rounded_to_ten_significant_digits():
    assert to_jsonable(np.float64(1 / 3)) == 0.3333333333
    assert to_jsonable(float("nan")) is None
    assert to_jsonable(math.inf) == "inf"
    assert to_jsonable(np.int64(7)) == 7 and isinstance(to_jsonable(np.int64(7)), int)


def test_tables_become_rows_and_text_is_stable():
    table = pd.DataFrame({"term": ["b", "a"], "estimate": [1.0, np.nan]})
    assert to_jsonable(table) == [{"term": "b", "estimate": 1.0}, {"term": "a", "estimate": None}]
    assert dumps({"b": 1, "a": 2}) == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_fragments_merge_by_dotted_name(tmp_path):
    write_json(tmp_path / "models.pain.json", {"x": 1})
    write_json(tmp_path / "models.episodes.json", {"y": 2})
    write_json(tmp_path / "data.json", {"n": 3})
    merged = merge_fragments(tmp_path)
    assert merged["models"] == {"pain": {"x": 1}, "episodes": {"y": 2}}
    assert merged["data"] == {"n": 3} and merged["schema_version"] == "1.0"
    assert not list(tmp_path.glob("*.tmp"))


def test_diff_names_the_changed_number():
    old = {"models": {"pain": [{"term": "week", "estimate": 1.0}]}}
    new = json.loads(json.dumps(old))
    assert diff_results(old, new) == []
    new["models"]["pain"][0]["estimate"] = 1.5
    assert diff_results(old, new) == ["models.pain[0].estimate: 1.0 -> 1.5"]
    assert flatten({"a": []}) == {"a": []}
