"""HTML for readers: each executed notebook in two views, and the run's dashboard (index.html).

- owner view: code hidden, prompts hidden, cells tagged ``researcher-only`` removed (per-patient
  plots live only in the researcher view);
- researcher view: everything, with code.

The dashboard is rendered by Jinja2 with autoescaping on, so any text that came from a log (clinic
ids, labels) is shown as text, never interpreted as markup.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from jinja2 import Environment, PackageLoader, select_autoescape
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from analysis.config import RunConfig

RESEARCHER_ONLY_TAG = "researcher-only"


def _exporter(view: str) -> HTMLExporter:
    if view == "owner":
        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        remover = TagRemovePreprocessor(remove_cell_tags={RESEARCHER_ONLY_TAG, "injected-parameters"},
                                        enabled=True)
        exporter.register_preprocessor(remover, enabled=True)
    else:
        exporter = HTMLExporter()
    return exporter


def render_notebook_html(notebook_path: Path, run_dir: Path) -> dict[str, Path]:
    """Write html/owner/<name>.html and html/researcher/<name>.html for an executed notebook."""
    nb = nbformat.read(notebook_path, as_version=4)
    written = {}
    for view in ("owner", "researcher"):
        body, _ = _exporter(view).from_notebook_node(nb)
        out = run_dir / "html" / view / f"{notebook_path.stem}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
        written[view] = out
    return written


def _env() -> Environment:
    return Environment(loader=PackageLoader("analysis.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]))


def render_dashboard(run_dir: Path, cfg: RunConfig, results: dict | None, status: str,
                     error: str | None, notebooks: list[str]) -> Path:
    """Write index.html: verdicts and headline numbers first, then figures, then links."""
    summary = (results or {}).get("summary", {})
    figures = [f for f in summary.get("figures", []) if (run_dir / "figures" / f"{f}.svg").exists()]
    page = _env().get_template("index.html.j2").render(
        name=cfg.name, status=status, error=error, summary=summary,
        claims=(results or {}).get("claims", []), figures=figures,
        notebooks=notebooks, threshold=cfg.disclosure_threshold,
    )
    path = run_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
