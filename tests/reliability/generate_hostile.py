"""A deterministic hostile corpus: run-folder attacks, bombs, special files, bad configs, disguised
identifiers and small numbers, each with what the suite must answer.

Every case writes its inputs into ``<case folder>/in`` and names an ``out`` folder; the test
(``test_corpus.py``) runs the command and checks: the exit code; every expected fragment of the
message (file, line, column or config key); no traceback; nothing written outside ``out``; the
files of ``in`` byte-identical; no secret (an identifier, a small count) in stderr or any file
written; bounded time and memory. Run as a script to write the corpus (``python
generate_hostile.py OUT``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HEADER = "patient_id,clinic_id,visit_date,intervention,pain_score"
ARMS = ["usual_care", "orthotics", "foot_massage"]


def base_rows(n_patients: int = 12, visits: int = 3) -> list[str]:
    """``n_patients`` patients (P01..), weekly visits: lines 2.. of the file."""
    rows = []
    for i in range(n_patients):
        start = dt.date(2024, 1, 1) + dt.timedelta(days=i)
        for j in range(visits):
            rows.append(f"P{i + 1:02d},C{i % 2 + 1},{start + dt.timedelta(weeks=j)},{ARMS[i % 3]},"
                        f"{6 - j + i % 3}")
    return rows


def log_text(rows=None, header=HEADER) -> str:
    return "\n".join([header] + (rows if rows is not None else base_rows())) + "\n"


def with_cell(column: int, value: str, row: int = 4, header: str = HEADER) -> str:
    rows = base_rows()
    cells = rows[row].split(",")
    cells[column] = value
    rows[row] = ",".join(cells)
    return log_text(rows, header)


def with_patient_id(value: str) -> str:
    """Every visit of P01 gets ``value`` as its id (lines 2-4)."""
    rows = [r.replace("P01,", f"{value},", 1) if r.startswith("P01,") else r for r in base_rows()]
    return log_text(rows)


def with_extra_column(name: str, values: list[str]) -> str:
    rows = base_rows()
    rows = [f"{r},{values[i % len(values)]}" for i, r in enumerate(rows)]
    return log_text(rows, f"{HEADER},{name}")


@dataclass
class Case:
    name: str
    group: str
    command: str  # "validate" | "run"
    exit_code: int
    expect: list[str]  # fragments the message (stderr) must hold; "{in}" is the inputs folder
    config: str = "name: t\ndata: log.csv\n"
    log: str | None = None  # CSV text; None: no log.csv written
    secrets: list[str] = field(default_factory=list)
    out: str = "out"  # relative to the case folder
    setup: Callable[[Path], None] | None = None  # extra files, links, FIFOs
    report_checks: list[str] = field(default_factory=list)  # checks expected in validation_report.csv
    max_rss_mb: int | None = None  # asserted when given (bombs)

    def write(self, folder: Path) -> Path:
        inputs = folder / "in"
        inputs.mkdir(parents=True, exist_ok=True)
        if self.log is not None:
            (inputs / "log.csv").write_text(self.log, encoding="utf-8")
        (inputs / "run.yaml").write_text(self.config, encoding="utf-8")
        (inputs / "notes.txt").write_text("the user's own notes\n")
        if self.setup is not None:
            self.setup(folder)
        return inputs / "run.yaml"


def _cfg(extra: str) -> str:
    return "name: t\ndata: log.csv\n" + extra + "\n"


# ----------------------------------------------------------------------------- special files

def _fifo(rel: str):
    def make(folder: Path) -> None:
        os.mkfifo(folder / rel)
    return make


def _folder(rel: str):
    def make(folder: Path) -> None:
        (folder / rel).mkdir(parents=True)
    return make


def _old_run(with_link: bool = False, foreign: bool = False):
    """An existing run folder ``out`` the suite made (its marker), with a link or a user file."""
    def make(folder: Path) -> None:
        out = folder / "out"
        out.mkdir()
        (out / "validation_report.csv").write_text("line,column,check,value,message\n")
        (out / ".outcomes-run.json").write_text(json.dumps(
            {"suite": "clinic-outcomes", "files": [".outcomes-run.json", "validation_report.csv",
                                                   "index.html"]}))
        if with_link:
            (folder / "victim.txt").write_text("outside the run folder\n")
            os.symlink(folder / "victim.txt", out / "index.html")
        if foreign:
            (out / "thesis.docx").write_bytes(b"precious")
    return make


def _log_elsewhere(text: str):
    def make(folder: Path) -> None:
        (folder / "data").mkdir()
        (folder / "data" / "log.csv").write_text(text)
    return make


def _xlsx_with_formula(folder: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    for row in base_rows():
        cells = row.split(",")
        sheet.append(cells[:4] + [int(cells[4])])
    sheet["E3"] = "=E2-1"  # saved by openpyxl: a formula with no cached value
    book.save(folder / "in" / "log.xlsx")


def _report_link(folder: Path) -> None:
    (folder / "out").mkdir()
    (folder / "victim.txt").write_text("outside the report folder\n")
    os.symlink(folder / "victim.txt", folder / "out" / "validation_report.csv")


def _symlink_out(folder: Path) -> None:
    (folder / "elsewhere").mkdir()
    os.symlink(folder / "elsewhere", folder / "out")


def _file_out(folder: Path) -> None:
    (folder / "out").write_text("a file\n")


def _claims_file(text: str):
    def make(folder: Path) -> None:
        (folder / "in" / "claims.yaml").write_text(text)
    return make


ALIAS_BOMB = "".join([f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n"
                      for i in range(8)])
BINARY_BOMB = "a0: &a0 [x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))
MERGE_BOMB = "b0: &b0 {k: 1}\n" + "".join(
    f"b{i}: &b{i} {{<<: [*b{i - 1}, *b{i - 1}], k{i}: {i}}}\n" for i in range(1, 30))
DEEP = "a: " + "[" * 3000 + "]" * 3000 + "\n"
DEEP_MAPS = "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n"


def cases() -> list[Case]:
    ok_log = log_text()
    bad_log = with_cell(4, "12")  # pain 12 on line 6: refused, fast, still a run folder
    out: list[Case] = []
    add = out.append

    # --- user data destroyed: --out at the user's files -----------------------------------
    add(Case("out_is_the_inputs_folder", "folder", "run", 2, ["contains the log"], log=ok_log, out="in"))
    add(Case("out_is_the_parent_of_the_inputs", "folder", "run", 2, ["contains the log"], log=ok_log, out="."))
    add(Case("out_holds_the_config", "folder", "run", 2, ["contains the config"], out="in",
             config="name: t\ndata: ../data/log.csv\n", setup=_log_elsewhere(ok_log)))
    add(Case("out_holds_a_user_file", "folder", "run", 2, ["thesis.docx", "no run of the suite wrote"],
             log=ok_log, setup=_old_run(foreign=True)))
    add(Case("old_run_with_a_symlink_out", "folder", "run", 2, ["index.html", "link"], log=ok_log,
             setup=_old_run(with_link=True)))
    add(Case("out_is_a_symlink", "folder", "run", 2, ["symbolic link"], log=ok_log, setup=_symlink_out))
    add(Case("out_is_a_file", "folder", "run", 2, ["is a file"], log=ok_log, setup=_file_out))
    add(Case("old_run_folder_is_replaced", "folder", "run", 2, ["pain_score", "line 6"], log=bad_log,
             setup=_old_run(), report_checks=["out_of_range"]))
    add(Case("validate_report_is_a_link", "folder", "validate", 2, ["validation_report.csv", "link"],
             log=bad_log, setup=_report_link))
    add(Case("claims_inside_out", "folder", "run", 2, ["contains the claims file"], log=ok_log, out="in/c",
             config=_cfg("claims: c/claims.yaml"), setup=lambda f: (f / "in" / "c").mkdir()))

    # --- hangs and blow-ups -------------------------------------------------------------
    long = "x" * 100_000
    add(Case("cell_100k_chars_in_notes", "bounded", "validate", 2, ["line 6", "cell_too_long", "100,000"],
             log=with_extra_column("extra", ["a"] * 4 + [long] + ["a"] * 31), report_checks=["cell_too_long"]))
    add(Case("cell_100k_chars_in_patient_id", "bounded", "validate", 2, ["line 2", "cell_too_long"],
             log=with_cell(0, "A" * 100_000 + "!", row=0), report_checks=["cell_too_long"]))
    add(Case("cell_100k_backtracking_text", "bounded", "validate", 2, ["cell_too_long"],
             log=with_cell(1, "Ab-" * 33_000, row=3)))
    add(Case("header_5k_chars", "bounded", "validate", 2, ["line 1", "(column 6)", "cell_too_long"],
             log=with_extra_column("h" * 5000, ["1"])))
    add(Case("cell_1000_chars_adversarial_ok_length", "bounded", "validate", 2, ["free text"],
             log=with_extra_column("extra", [("Aa " * 333)[:999]] * 2 + ["walked much better today"] * 1
                                   + ["sore after the stairs", "knee fine this week", "felt good at work"])))
    for name, text in (("alias_bomb", ALIAS_BOMB), ("binary_alias_bomb", BINARY_BOMB),
                       ("merge_key_bomb", MERGE_BOMB)):
        add(Case(f"config_{name}", "bounded", "validate", 2, ["run.yaml", "refused YAML"],
                 config=_cfg(text), log=ok_log))
        add(Case(f"claims_{name}", "bounded", "run", 2, ["claims.yaml", "refused YAML"], log=ok_log,
                 config=_cfg("claims: claims.yaml"), setup=_claims_file(text)))
    add(Case("config_deep_sequences", "bounded", "validate", 2, ["run.yaml", "nested deeper than 20"],
             config=_cfg(DEEP), log=ok_log))
    add(Case("config_deep_mappings", "bounded", "validate", 2, ["run.yaml", "nested deeper than 20"],
             config=_cfg(DEEP_MAPS), log=ok_log))
    add(Case("config_recursive_alias", "bounded", "validate", 2, ["refers to itself"],
             config=_cfg("x: &x [*x]"), log=ok_log))
    add(Case("claims_is_a_fifo", "bounded", "run", 2, ["claims.yaml", "not a regular file"], log=ok_log,
             config=_cfg("claims: claims.yaml"), setup=_fifo("in/claims.yaml")))
    add(Case("claims_is_dev_zero", "bounded", "run", 2, ["/dev/zero", "not a regular file"], log=ok_log,
             config=_cfg("claims: /dev/zero")))
    add(Case("claims_is_a_folder", "bounded", "run", 2, ["claims.yaml", "is a folder"], log=ok_log,
             config=_cfg("claims: claims.yaml"), setup=_folder("in/claims.yaml")))
    add(Case("claims_too_big", "bounded", "run", 2, ["claims.yaml", "at most 1,000,000"], log=ok_log,
             config=_cfg("claims: claims.yaml"), setup=_claims_file("# " + "x" * 1_100_000 + "\n")))
    add(Case("data_is_a_fifo", "bounded", "validate", 2, ["log.csv", "not a regular file"],
             setup=_fifo("in/log.csv")))
    add(Case("data_is_dev_zero", "bounded", "validate", 2, ["/dev/zero", "not a regular file"],
             config="name: t\ndata: /dev/zero\n"))
    add(Case("data_is_a_folder", "bounded", "validate", 2, ["log.csv", "not a regular file"],
             setup=_folder("in/log.csv")))
    for formula, why in (("pain_score ~ week ** 99999", "a power must be"),
                         ("pain_score ~ week ** 2.5", "a power must be"),
                         ("pain_score ~ week ** (2)", "a power must be"),
                         ("pain_score ~ I(week * 10000000000000000)", "at most 12 characters"),
                         ("pain_score ~ week + patient_id", "identifies patients"),
                         ("pain_score ~ week * arm + clinic_id", "identifies patients"),
                         ("pain_score ~ " + " + ".join(["week"] * 300), "at most 1000")):
        add(Case(f"formula_{len(out)}", "bounded", "run", 2, ["models.pain.formula", why], log=ok_log,
                 config=_cfg(f"models: {{pain: {{formula: '{formula}'}}}}")))

    # --- tracebacks instead of messages: config refused up front -----------------------
    for key, yaml_text, why in (
            ("read.encoding", "read: {encoding: rot13}", "not a text encoding"),
            ("read.encoding", "read: {encoding: base64}", "not a text encoding"),
            ("read.encoding", "read: {encoding: no-such-codec}", "unknown encoding"),
            ("models.pain.weeks", "models: {pain: {weeks: [0, 1.0e+308]}}", "less than or equal to 520"),
            ("models.pain.weeks", "models: {pain: {weeks: [0, .nan]}}", "finite"),
            ("models.pain.weeks", "models: {pain: {weeks: [0, .inf]}}", "finite"),
            ("models.pain.weeks", "models: {pain: {weeks: [-4, 4]}}", "greater than or equal to 0"),
            ("models.alpha", "models: {alpha: 1.0e-300}", "greater than 0.000001"),
            ("models.alpha", "models: {alpha: 0.7}", "less than 0.5"),
            ("models.alpha", "models: {alpha: .nan}", "finite"),
            ("models.responders.week", "models: {responders: {week: 1.0e+308}}", "520"),
            ("models.responders.window", "models: {responders: {window: .inf}}", "finite"),
            ("models.pain.outcome", "models: {pain: {outcome: patient_id}}", "cannot be an outcome"),
            ("models.pain.outcome", "models: {pain: {outcome: clinic_id}}", "cannot be an outcome"),
            ("models.pain.covariates", "models: {pain: {covariates: [patient_id]}}", "cannot be a covariate"),
            ("models.episodes.covariates", "models: {episodes: {covariates: [clinic_id]}}", "covariate"),
            ("models.strength.covariates", "models: {strength: {covariates: [patient_id]}}", "covariate"),
            ("outcomes", "outcomes: {patient_id: {label: id}}", "cannot be an outcome"),
            ("disclosure_threshold", "disclosure_threshold: 0", "greater than or equal to 1"),
            ("benchmarking.week", "benchmarking: {week: .inf}", "finite"),
            ("models.moderator.overpronated_above", "models: {moderator: {overpronated_above: 1.0e+300}}", "12")):
        add(Case(f"config_{len(out)}_{key.split('.')[-1]}", "config", "validate", 2, ["run.yaml", key, why],
                 config=_cfg(yaml_text), log=ok_log))
    add(Case("weeks_after_the_data", "config", "run", 2, ["models.pain.weeks[1]", "after the last visit"],
             log=ok_log, config=_cfg("models: {pain: {weeks: [0, 60]}}")))
    add(Case("responders_week_after_the_data", "config", "run", 2, ["models.responders.week"],
             log=ok_log, config=_cfg("models: {responders: {week: 40}}")))

    # --- identifiers that got through -----------------------------------------------------
    for label, value, kind in (
            ("spelled_email", "jane (at) example dot org", "email"),
            ("bracket_email", "jane[at]example[dot]org", "email"),
            ("word_email", "jane at example dot co dot uk", "email"),
            ("brace_email", "j.doe {at} mail {dot} com", "email"),
            ("plain_email", "jane@example.org", "email"),
            ("us_phone_dots", "555.123.4567", "phone"),
            ("us_phone_dashes", "555-123-4567", "phone"),
            ("intl_phone_00", "0044 20 7946 0958", "phone"),
            ("intl_phone_00_compact", "004915112345678", "phone"),
            ("intl_phone_plus", "+49 151 1234 5678", "phone"),
            ("initials_iso_date", "JD-1984-03-02", "date of birth"),
            ("initials_compact_date", "JD19840302", "date of birth"),
            ("date_dmy_initials", "02.03.1984-JD", "date of birth"),
            ("nhs_number", "943 476 5919", "nhs number")):
        add(Case(f"patient_id_{label}", "identifier", "validate", 2, ["'patient_id'", kind],
                 log=with_patient_id(value), secrets=[value], report_checks=["direct_identifier"]))
    for label, header, kind in (("email", "jane@example.org", "email"),
                                ("spelled_email", "jane (at) example dot org", "email"),
                                ("phone", "+44 20 7946 0958", "phone")):
        add(Case(f"header_is_{label}", "identifier", "validate", 2, ["(column 6)", kind],
                 log=with_extra_column(header, ["1"]), secrets=[header]))
    notes = ["knee better", "sore today", "walked far", "bad night", "stairs ok now", "ran 5k fine"]
    add(Case("short_free_text_notes", "identifier", "validate", 2, ["'remarks_x'", "free text"],
             log=with_extra_column("remarks_x", notes), secrets=notes[:3]))
    add(Case("email_in_unused_column", "identifier", "validate", 2, ["'contact_x'", "email"],
             log=with_extra_column("contact_x", ["a.b@example.org", ""]), secrets=["a.b@example.org"]))

    # --- small numbers --------------------------------------------------------------------
    add(Case("one_patient", "disclosure", "run", 2, ["below_disclosure_threshold", "fewer than"],
             log=log_text(base_rows(1)), report_checks=["below_disclosure_threshold"]))
    add(Case("two_patients", "disclosure", "run", 2, ["below_disclosure_threshold"],
             log=log_text(base_rows(2)), report_checks=["below_disclosure_threshold"]))
    add(Case("threshold_above_the_patients", "disclosure", "run", 2, ["disclosure_threshold (20)"],
             log=ok_log, config=_cfg("disclosure_threshold: 20"), report_checks=["below_disclosure_threshold"]))

    # --- silent loss --------------------------------------------------------------------
    add(Case("xlsx_formula_without_saved_value", "loss", "validate", 2,
             ["line 3", "'pain_score'", "formula_without_value"], config="name: t\ndata: log.xlsx\n",
             setup=_xlsx_with_formula, report_checks=["formula_without_value"]))

    for label, value in (("compact", "20240105"), ("slashes", "2024/01/05"), ("dots", "2024.01.05"),
                         ("year_month", "2024-01"), ("year_only", "2024")):
        add(Case(f"visit_date_{label}", "loss", "validate", 2, ["line 6", "'visit_date'", "date_parse"],
                 log=with_cell(2, value), report_checks=["date_parse"]))

    # --- valid look-alikes: accepted ------------------------------------------------------
    for label, text in (("categorical_side_column", with_extra_column("side", ["Left knee", "Right knee"])),
                        ("ids_with_dates_no", with_patient_id("P-0001-A")),
                        ("ids_leading_zeros", with_patient_id("000042")),
                        ("long_but_allowed_cell", with_extra_column("code", ["x" * 1000])),
                        ("header_with_at_sign_word", with_extra_column("pain at rest", ["3"])),
                        ("numeric_extra_column", with_extra_column("dose_mg", ["10", "20", "15"]))):
        add(Case(f"accepted_{label}", "accepted", "validate", 0, ["rows:"], log=text))
    for label, text in (("alpha_001", _cfg("models: {alpha: 0.01}")),
                        ("encoding_latin1", _cfg("read: {encoding: latin-1}")),
                        ("a_few_aliases", _cfg("models:\n  pain: {weeks: &w [0, 2]}\n"
                                               "  responders: {week: 2}")),
                        ("threshold_equal_patients", _cfg("disclosure_threshold: 12"))):
        add(Case(f"accepted_config_{label}", "accepted", "validate", 0, ["rows:"], log=ok_log, config=text))
    return out


def write_corpus(folder: Path) -> list[dict]:
    listing = []
    for case in cases():
        case.write(folder / case.name)
        listing.append({"name": case.name, "group": case.group, "command": case.command,
                        "exit_code": case.exit_code, "expect": case.expect})
    (folder / "cases.json").write_text(json.dumps(listing, indent=1))
    return listing


if __name__ == "__main__":  # pragma: no cover
    print(f"{len(write_corpus(Path(sys.argv[1])))} cases written to {sys.argv[1]}")
