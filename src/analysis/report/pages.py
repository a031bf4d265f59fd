"""The audit page (``audit.html``): the run's manifest in readable form, and how to check it.

Shows the inputs with their SHA-256, the validated config, package versions, the git commit, what
disclosure control withheld, captured warnings and the outputs, then the two commands that rerun
the run and verify it against this manifest. Rendered from the manifest document itself (before
``manifest.json`` is written, so that the manifest can list the page among its outputs).
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.report.html import ReportHeader, _env, report_css


def render_audit(run_dir: Path, manifest: dict, header: ReportHeader, target: Path | None = None) -> Path:
    """Write ``audit.html`` for a run from its manifest document.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    manifest : dict
        The manifest as :func:`analysis.run.manifest.build_manifest` assembles it.
    header : ReportHeader
        The run's page header.
    target : Path, optional
        Where the run folder will be (the runner writes into a staging folder first); input paths
        in the manifest are relative to it. Default ``run_dir``.
    """
    import os

    target = Path(target or run_dir)
    config_path = next((i["path"] for i in manifest.get("inputs", []) if i.get("role") == "config"), "<config>")
    if not Path(config_path).is_absolute() and config_path != "<config>":
        config_path = os.path.normpath(target / config_path)
    suppressed = manifest.get("disclosure", {}).get("suppressed", [])
    by_table: dict[tuple[str, str], int] = {}
    for entry in suppressed:
        key = (entry.get("section", ""), entry.get("table", ""))
        by_table[key] = by_table.get(key, 0) + 1
    page = _env().get_template("audit.html.j2").render(
        header=header, m=manifest, css=report_css(),
        config_text=json.dumps(manifest.get("config", {}), indent=2, sort_keys=True),
        suppressed=sorted(by_table.items()),
        rerun=f"outcomes run --config {config_path} --out {target}-rerun",
        verify=f"outcomes verify {target}",
    )
    path = run_dir / "audit.html"
    path.write_text(page, encoding="utf-8")
    return path
