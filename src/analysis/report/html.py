"""HTML for readers: three views of one run, from the same executed notebooks and results.json.

- ``index.html`` and ``owner/NN_x.html`` — the owner report: code and prompts hidden, cells tagged
  ``researcher-only`` (model tables, methods, per-patient plots) removed;
- ``researcher/NN_x.html`` — everything, with code;
- ``audit.html`` — the manifest in readable form (:mod:`analysis.report.pages`).

Every page is self-contained (nothing is fetched: JupyterLab's CSS and the report's CSS are
inlined, figures are data URIs, and the ``clinic`` nbconvert template leaves out the require.js,
MathJax and Mermaid script tags of nbconvert's ``lab`` template), carries a viewport tag, a
title ``<label> — <page>``, a header (clinic, data period, disclosure sentence) and navigation
(dashboard, previous, next, the other view).

Figures stay ``<img src="data:image/svg+xml;base64,...">`` rather than inline ``<svg>``:
matplotlib writes the same element ids in every figure (fixed ``svg.hashsalt``, for byte-identical
files), and two inline SVGs on one page would share clip paths.

Templates are rendered by Jinja2 with autoescaping on, so any text that came from a log (clinic
ids, labels) is shown as text, never interpreted as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

import nbformat
from jinja2 import Environment, PackageLoader, select_autoescape
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from analysis.config import RunConfig
from analysis.report.labels import outcome_pages, page_question, page_title, treatment_label

RESEARCHER_ONLY_TAG = "researcher-only"
VIEWS = ("owner", "researcher")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class ReportHeader:
    """What every page says about the run before anything else (from the data, never the clock)."""

    label: str
    clinic: str
    period: str
    disclosure: str
    #: titles and questions of the outcome pages the config relabels (:func:`labels.outcome_pages`)
    pages: dict = field(default_factory=dict, compare=False)


def _month(text: str) -> str:
    year, month = (int(v) for v in text.split("-"))
    return date(year, month, 1).strftime("%B %Y")


def data_period(visit_months: tuple[str, str] | None, max_week: float | None) -> str:
    """'Visits from March 2025 to November 2025' (months only), else the follow-up span.

    Parameters
    ----------
    visit_months : (str, str) or None
        First and last visit month as ``YYYY-MM`` (``ValidatedLog.visit_months``).
    max_week : float or None
        The longest follow-up in weeks, used when the log has no dates.
    """
    if visit_months:
        first, last = (_month(m) for m in visit_months)
        return f"Visits in {first}" if first == last else f"Visits from {first} to {last}"
    if max_week is not None and max_week == max_week:
        return f"Follow-up of up to {max_week:.0f} weeks (the log has no visit dates)"
    return "Data period unknown"


def disclosure_sentence(threshold: int) -> str:
    return (f"Every number shown rests on at least {threshold} patients; "
            "smaller groups are withheld to protect patients' privacy.")


def report_header(cfg: RunConfig, validated=None) -> ReportHeader:
    """The header of every page of a run, from its config and validated log.

    ``validated`` is the :class:`~analysis.intake.validate.ValidatedLog` (None when the log never
    validated: the header then says so).
    """
    clinics = None if validated is None else int(validated.data["clinic_id"].nunique())
    if cfg.benchmarking.clinic_id:
        clinic = f"Clinic {cfg.benchmarking.clinic_id}, within a network of {clinics} clinics"
    elif clinics is not None:
        clinic = f"{clinics} clinic{'s' if clinics != 1 else ''}, pooled"
    else:
        clinic = "Clinics unknown"
    if validated is None:
        period = "Data period unknown"
    else:
        period = data_period(getattr(validated, "visit_months", None), float(validated.data["week"].max()))
    return ReportHeader(label=cfg.label or cfg.name, clinic=clinic, period=period,
                        disclosure=disclosure_sentence(cfg.disclosure_threshold),
                        pages=outcome_pages(cfg))


@lru_cache(maxsize=None)
def _env() -> Environment:
    # One environment per process: Jinja compiles each template once and keeps it.
    return Environment(loader=PackageLoader("analysis.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]))


def report_css() -> str:
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _exporter(view: str) -> HTMLExporter:
    # One exporter per view and process, reused for every page: building one compiles nbconvert's
    # templates again, which was half the time of rendering a page. from_notebook_node keeps no
    # state between calls (each page brings its own resources).
    common = {"template_name": "clinic", "extra_template_basedirs": [str(TEMPLATES / "nbconvert")],
              "embed_images": True}
    if view == "owner":
        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                                **common)
        remover = TagRemovePreprocessor(remove_cell_tags={RESEARCHER_ONLY_TAG, "injected-parameters"},
                                        enabled=True)
        exporter.register_preprocessor(remover, enabled=True)
    else:
        exporter = HTMLExporter(**common)
    return exporter


def _link(stem: str | None, view: str, here: str, pages: dict | None = None) -> dict | None:
    if stem is None:
        return None
    href = f"{stem}.html" if view == here else f"../{view}/{stem}.html"
    return {"href": href, "title": page_title(stem, pages)}


def page_navigation(stem: str, order: list[str], view: str, pages: dict | None = None) -> dict:
    """Links of one notebook page: dashboard (``root``), previous, next, the other view
    (``pages``: the relabelled outcome pages, :func:`~analysis.report.labels.outcome_pages`)."""
    i = order.index(stem)
    other = "researcher" if view == "owner" else "owner"
    other_title = "Model details (researcher view)" if view == "owner" else "Plain view (for clinic owners)"
    return {"root": "../", "prev": _link(order[i - 1] if i > 0 else None, view, view, pages),
            "next": _link(order[i + 1] if i + 1 < len(order) else None, view, view, pages),
            "other": {"href": f"../{other}/{stem}.html", "title": other_title}}


def render_notebook_html(notebook_path: Path, run_dir: Path, header: ReportHeader,
                         order: list[str] | None = None) -> dict[str, Path]:
    """Write owner/<name>.html and researcher/<name>.html for an executed notebook.

    Parameters
    ----------
    notebook_path : Path
        The executed notebook (``notebooks/NN_x.ipynb`` of the run).
    run_dir : Path
        The run folder.
    header : ReportHeader
        What every page says first (:func:`report_header`).
    order : list of str, optional
        The notebooks of the run in order, for previous/next links (default: this one alone).
    """
    stem = notebook_path.stem
    order = order or [stem]
    env = _env()
    written = {}
    for view in VIEWS:
        nb = nbformat.read(notebook_path, as_version=4)
        suffix = "" if view == "owner" else " (researcher view)"
        nb.metadata["title"] = f"{header.label} — {page_title(stem, header.pages)}{suffix}"
        nav = page_navigation(stem, order, view, header.pages)
        context = {"header": header, "question": page_question(stem, header.pages), **nav}
        resources = {"clinic": {
            "view": view, "css": report_css(),
            "header": env.get_template("page_header.html.j2").render(**context),
            "footer": env.get_template("page_footer.html.j2").render(**context),
        }}
        body, _ = _exporter(view).from_notebook_node(nb, resources=resources)
        out = run_dir / view / f"{stem}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
        written[view] = out
    return written


def _svg_data_uri(path: Path) -> str:
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_dashboard(run_dir: Path, cfg: RunConfig, results: dict | None, status: str,
                     error: str | None, notebooks: list[str], header: ReportHeader | None = None) -> Path:
    """Write index.html: verdicts and headline numbers first, then figures, then the pages."""
    from analysis.report.labels import page_question as question
    from analysis.report.outcome_words import claim_noun
    from analysis.report.wording import rests_on

    header = header or report_header(cfg)
    summary = (results or {}).get("summary", {})
    control, words, episodes = treatment_label(cfg.control), caption_words(cfg), claim_noun(cfg, "episodes")
    figures = [{"src": _svg_data_uri(run_dir / "figures" / f"{f}.svg"),
                "caption": FIGURE_CAPTIONS.get(f, "").format(control=control, **words)}
               for f in summary.get("figures", []) if (run_dir / "figures" / f"{f}.svg").exists()]
    pages = [{"stem": nb, "title": page_title(nb, header.pages), "question": question(nb, header.pages)}
             for nb in notebooks]
    page = _env().get_template("index.html.j2").render(
        header=header, status=status, error=error, summary=summary,
        claims=[{**c, "rests_on": rests_on(c.get("analysis"), episodes)}
                for c in (results or {}).get("claims", [])],
        figures=figures, pages=pages, css=report_css(),
    )
    path = run_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def caption_words(cfg: RunConfig) -> dict:
    """The outcome words of :data:`FIGURE_CAPTIONS`: each outcome's word from its label
    (``Pain``/``Episodes`` at a sentence start), and the report's time unit ("weeks")."""
    from analysis.report.outcome_words import report_unit, words

    return {"Pain": words(cfg, cfg.models.pain.outcome)["Word"], "Episodes": words(cfg, "episodes")["Word"],
            "strength": words(cfg, "strength")["word"], "unit": report_unit(cfg)}


# What each dashboard figure shows, in words (the figure's own title says what is plotted).
FIGURE_CAPTIONS = {
    "claims_forest": "Each claim: what the data show (dot and line: the estimate and its 95% interval) "
                     "against what was claimed (diamond).",
    "pain_marginal_means": "{Pain} over the {unit} with each treatment, against {control}.",
    "episode_rate_ratios": "{Episodes} with each treatment compared with {control}.",
    "strength_percent_change": "Change in {strength} over the follow-up with each treatment.",
    "responder_proportions": "Share of patients with relief they would notice.",
}
