"""The run folder a notebook writes into, and the only channel between notebooks.

Layout of ``reports/<run>/``::

    manifest.json            provenance (written by the runner)
    results.json             every estimate (merged from results/ by the runner)
    index.html               dashboard (the owner report's first page)
    audit.html               the manifest in readable form, how to rerun and verify
    notebooks/NN_x.ipynb     executed notebooks
    owner/NN_x.html          owner report: code hidden, researcher-only cells removed
    researcher/NN_x.html     researcher report: everything, with code
    tables/*.csv             tidy, disclosure-controlled tables
    figures/*.svg            deterministic figures
    results/<section>.json   per-notebook result fragments
    logs/disclosure-*.json   what disclosure control suppressed
    private/visits.parquet   the validated per-visit table: stays in the run folder, never published
    private/validated.pickle the runner's validation of the log, which 01 reuses (keep_validation)
    private/fits/*.pickle    fitted models 03-06 keep for 08 (RunContext.save_fit), never published

Notebooks talk to each other only through these files, never through kernel state. Relative paths
given to a notebook are resolved against the project root (the nearest folder upwards holding
``pyproject.toml``), so the same defaults work from JupyterLab (cwd ``notebooks/``), from papermill
run at the root, and from the runner.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.config import RunConfig, load_config  # noqa: E402
from analysis.report.disclosure import COORDINATES, DisclosureLog, suppress_small_cells  # noqa: E402
from analysis.report.labels import column_label, treatment_label  # noqa: E402
from analysis.results import write_json  # noqa: E402

# Fixed SVG ids and no embedded dates: the same figure gives the same bytes.
matplotlib.rcParams["svg.hashsalt"] = "clinic-outcomes"
matplotlib.rcParams["svg.fonttype"] = "none"

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Markup in text that may come from a log (clinic ids, labels): angle brackets would open HTML
# tags in the rendered notebook, and an unescaped [..](..) a link (javascript: URLs included).
_MARKUP = re.compile(r"[<>]|(?<!\\)[\[\]]")


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    return here


def resolve_path(path: str | Path) -> Path:
    """Absolute paths stay; relative ones resolve against the project root."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


def escape_formula(value):
    """Prefix a spreadsheet-formula-like text cell with an apostrophe (CSV injection guard)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        # A negative number is data, not a formula.
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


def markdown_safe(text: str) -> str:
    """Text for a Markdown output with its markup neutralised: ``<`` and ``>`` become entities
    and ``[`` / ``]`` are backslash-escaped (already escaped ones, e.g. by
    :func:`analysis.report.sections.benchmarking.markdown_text`, are left as they are)."""
    return _MARKUP.sub(lambda m: {"<": "&lt;", ">": "&gt;"}.get(m.group(0), "\\" + m.group(0)),
                       str(text))


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write a CSV with formula-like text cells escaped and a fixed float format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    safe = table.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(escape_formula)
    safe.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")
    return path


def display_number(value, places: int) -> str:
    """A table cell as a reader sees it: floats to ``places`` decimals and never "-0.0" (a value
    that rounds to zero has no sign, docs/wording.md); integers as they are; missing as "—"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)) and places == 0:
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(value)
    text = f"{float(value):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def read_visits(path: Path) -> pd.DataFrame:
    """``pd.read_parquet(path)``, with each text column's equal values one shared str object.

    Text columns are read dictionary-encoded and expanded from their distinct values, so a
    7-million-row table holds a few distinct strings per column instead of a string object per
    cell (about 60 bytes a cell less), and hashing a column (groupby, factorize) hashes each
    distinct string once. Values, dtypes and missing values (None) are those of read_parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analysis.intake.codes import as_object_text

    text = [f.name for f in pq.read_schema(path) if pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)]
    table = pq.read_table(path, read_dictionary=text)
    visits = table.to_pandas()
    for name in text:
        visits[name] = as_object_text(visits[name])
    return visits


@dataclass
class RunContext:
    """One notebook's handle on the run: config, data, and the files it may write."""

    config_path: Path
    run_dir: Path
    cfg: RunConfig
    section: str = "run"
    disclosure: DisclosureLog = field(init=False)

    def __post_init__(self):
        self.disclosure = DisclosureLog(self.cfg.disclosure_threshold)
        for sub in ("tables", "figures", "results", "logs", "private"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    # -- data --------------------------------------------------------------------------------
    @property
    def visits_path(self) -> Path:
        return self.run_dir / "private" / "visits.parquet"

    def prepare(self):
        """Validate the configured log, give each patient an arm, keep the visit table private.

        Returns the :class:`~analysis.intake.validate.ValidatedLog` and the
        :class:`~analysis.intake.arms.ArmAssignment`.
        """
        from analysis.intake.arms import add_cumulative_sessions, assign_arms
        from analysis.intake.validate import validate_log

        validated = self._kept_validation() or validate_log(self.cfg)
        arms = assign_arms(validated.data, self.cfg.control, self.cfg.models.arm_column)
        visits = arms.data
        if self.cfg.models.dose_response:
            visits = add_cumulative_sessions(visits, self.cfg.interventions)
        visits.assign(arm=visits["arm"].astype(str)).to_parquet(self.visits_path, index=False)
        return validated, arms

    def _kept_validation(self):
        """The runner's :func:`keep_validation` of this config and log, or None (absent, another
        config, or the log changed since: then the notebook validates the log itself)."""
        from analysis.intake.ingest import sha256_file

        path = self.run_dir / "private" / VALIDATED
        if not path.exists() or not Path(self.cfg.data).is_file():
            return None
        with open(path, "rb") as f:
            kept = pickle.load(f)  # noqa: S301 — written by this run folder's own runner
        fresh = kept.get("key") == _validation_key(self.cfg, sha256_file(self.cfg.data))
        return kept["validated"] if fresh else None

    def visits(self) -> pd.DataFrame:
        """The validated per-visit table with ``arm``; prepared first when no notebook has yet."""
        if not self.visits_path.exists():
            self.prepare()
        visits = read_visits(self.visits_path)
        from analysis.intake.arms import arm_levels

        visits["arm"] = pd.Categorical(visits["arm"], categories=arm_levels(visits["arm"].unique(),
                                                                          self.cfg.control))
        # Each column set above is a block of its own; pandas merges the blocks of one dtype (a
        # copy of them) at the first filter or sort, and again in every frame derived before that.
        # Merged once here, the notebook's filters copy only the rows they keep (-0.4 s a notebook
        # at 20,000 patients).
        visits._consolidate_inplace()  # noqa: SLF001 — pandas has no public in-place form
        return visits

    # -- fitted models shared between notebooks --------------------------------------------
    def save_fit(self, name: str, result) -> None:
        """Keep a fitted endpoint result for later notebooks: ``private/fits/<name>.pickle``.

        Notebook 08 grades claims on the models 03-06 fitted instead of fitting them again. The
        file holds patient-level arrays (residuals, design), so it stays in ``private/``; it is
        the run's own file, read back only by the run's notebooks, and only while the config's
        models, the control arm and the visit table are those it was fitted with (``_fit_key``).
        """
        path = self.run_dir / "private" / "fits" / f"{name}.pickle"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"key": self._fit_key(), "result": result}, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    def saved_fits(self) -> dict:
        """The results :meth:`save_fit` kept for this config and visit table, by name (an absent
        or stale one is left out: the notebook then fits it itself)."""
        folder = self.run_dir / "private" / "fits"
        if not folder.is_dir() or not self.visits_path.exists():
            return {}
        key, out = self._fit_key(), {}
        for path in sorted(folder.glob("*.pickle")):
            with open(path, "rb") as f:
                saved = pickle.load(f)  # noqa: S301 — written by this run folder's own notebooks
            if saved.get("key") == key:
                out[path.stem] = saved["result"]
        return out

    def _fit_key(self) -> str:
        st = self.visits_path.stat()
        what = [self.cfg.control, self.cfg.models.model_dump(mode="json"), st.st_size, st.st_mtime_ns]
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    # -- outputs -----------------------------------------------------------------------------
    def public_table(self, name: str, table: pd.DataFrame, count_column: str | None = "n_patients",
                     key_columns: list[str] | None = None, shares: dict[str, str] | None = None) -> pd.DataFrame:
        """Suppress small cells (when the table has a patient count), write tables/<name>.csv."""
        if count_column is not None and count_column in table.columns:
            table = suppress_small_cells(table, self.cfg.disclosure_threshold, self.disclosure,
                                         table_name=name, count_column=count_column,
                                         key_columns=key_columns, shares=shares)
        write_csv(table, self.run_dir / "tables" / f"{name}.csv")
        self._flush_disclosure()
        return table

    def figure(self, name: str, fig: plt.Figure) -> plt.Figure:
        """Write figures/<name>.svg deterministically and return the figure for display."""
        path = self.run_dir / "figures" / f"{name}.svg"
        fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
        fig.svg_path = path  # rendered once: Section.figure displays this file
        plt.close(fig)  # kept for display through Section.figure, released from pyplot's registry
        return fig

    def results(self, key: str, value) -> None:
        """Write a results fragment; ``key`` is its dotted place in results.json."""
        write_json(self.run_dir / "results" / f"{key}.json", value)

    def _flush_disclosure(self) -> None:
        path = self.run_dir / "logs" / f"disclosure-{self.section}.json"
        path.write_text(json.dumps({"threshold": self.disclosure.threshold,
                                    "suppressed": self.disclosure.entries}, indent=2, sort_keys=True))


#: The runner's validation of the log, in ``private/`` (it holds the per-visit table).
VALIDATED = "validated.pickle"


def _validation_key(cfg: RunConfig, log_sha256: str) -> str:
    what = [cfg.model_dump(mode="json"), log_sha256]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def keep_validation(run_dir: Path, cfg: RunConfig, validated) -> Path:
    """Keep the runner's validation of the log for notebook 01: ``private/validated.pickle``.

    The runner validates the log before any notebook starts (to refuse a bad one with nothing
    half-written); 01 then reads this file instead of reading and validating the log a second
    time, but only while the config and the log's SHA-256 are those it was made from (a notebook
    run alone, or after the log changed, validates the log itself).
    """
    path = Path(run_dir) / "private" / VALIDATED
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"key": _validation_key(cfg, validated.sha256), "validated": validated}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def open_run(config: str | Path, run_dir: str | Path, section: str = "run") -> RunContext:
    """Open (or create) a run folder for a notebook.

    Parameters
    ----------
    config : path
        The run config (YAML); relative paths resolve against the project root.
    run_dir : path
        The run folder; relative paths resolve against the project root.
    section : str
        The notebook's section name, used to name its disclosure log.
    """
    config_path = resolve_path(config)
    cfg = load_config(config_path)
    return RunContext(config_path=config_path, run_dir=resolve_path(run_dir), cfg=cfg, section=section)


def figure_title(fig: plt.Figure) -> str:
    """A figure's title in words (its suptitle, else its first panel's title), for alt text."""
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if not title:
        title = next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
    return " ".join(title.replace("\\$", "$").split()) or "figure"


@dataclass(frozen=True)
class FigureOutput:
    """An SVG figure for display with its title as alternative text (the ``clinic`` template puts
    it in the image's ``alt``; text-only frontends show the title)."""

    svg: str
    alt: str

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/svg+xml": self.svg, "text/plain": self.alt}, {"image/svg+xml": {"alt": self.alt}}


@dataclass
class Section:
    """What a notebook shows: plain sentences first, then figures, then tables.

    Tables here have already passed disclosure control; ``table(name)`` formats one for display
    (numbers rounded, suppressed cells shown as "withheld").
    """

    sentences: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, plt.Figure] = field(default_factory=dict)
    not_shown: str = "not analysed for this log (see the summary page for why)"
    # Sentences about the model rather than the finding (estimands, variance components, tests):
    # shown by say_details() in the researcher view only.
    details: list[str] = field(default_factory=list)

    def say(self):
        """The section's plain-language findings as Markdown."""
        from IPython.display import Markdown

        return Markdown("\n".join(f"- {markdown_safe(s)}" for s in self.sentences)
                        or "_Nothing to report._")

    def say_details(self):
        """The section's technical notes as Markdown (a researcher-only cell shows them)."""
        from IPython.display import Markdown

        return Markdown("\n".join(f"- {markdown_safe(s)}" for s in self.details) or "_No notes._")

    def _absent(self, name: str):
        from IPython.display import Markdown

        return Markdown(f"_{name.replace('_', ' ').capitalize()}: {markdown_safe(self.not_shown)}._")

    def table(self, name: str, digits: int = 2):
        """A display copy of a table: rounded, suppressed rows marked, no index."""
        if name not in self.tables:
            return self._absent(name)
        table = self.tables[name].copy()
        if "suppressed" in table:
            flagged = table.pop("suppressed").to_numpy(dtype=bool)
            table = table.astype(object)
            numeric = [c for c in self.tables[name].columns
                       if c not in ("suppressed", *COORDINATES)
                       and pd.api.types.is_numeric_dtype(self.tables[name][c])]
            table.loc[flagged, numeric] = "withheld"
        counts = [c for c in table.columns if str(c).startswith("n_") or c in ("week", "visits")]
        counts += [c for c in table.columns if c not in counts
                   and pd.api.types.is_integer_dtype(self.tables[name][c])]
        for col in ("arm", "comparison", "treatment"):  # code names of treatments -> words
            if col in table and not pd.api.types.is_numeric_dtype(table[col]):
                table[col] = table[col].map(lambda v: v if v is None or v == "withheld" else treatment_label(v))
        headers = {c: column_label(c) for c in table.columns}
        table = table.rename(columns=headers)
        counts = [headers[c] for c in counts]

        # escape="html": cells may hold text from a log (clinic ids, labels), shown as text only.
        # Headers too: a wide table's columns can be treatments or clinics named in the log.
        return (table.style.hide(axis="index").format(lambda v: display_number(v, digits), escape="html")
                .format(lambda v: display_number(v, 0), subset=counts, escape="html")
                .format_index(escape="html", axis=1))

    def figure(self, name: str):
        """The named figure as SVG for display, or a note saying why it is absent."""
        if name not in self.figures:
            return self._absent(name)
        import io

        from IPython.display import SVG

        fig = self.figures[name]
        path = getattr(fig, "svg_path", None)
        if path is not None and Path(path).exists():  # written by RunContext.figure: not drawn again
            return FigureOutput(SVG(Path(path).read_bytes()).data, figure_title(fig))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        return FigureOutput(SVG(buffer.getvalue()).data, figure_title(fig))
