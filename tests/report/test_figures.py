"""analysis.report.figures: large scatter layers are rasterised inside the SVG; a figure written by
the run context is displayed from its file, not drawn again."""

import io

import numpy as np
import pandas as pd

from analysis.report import figures
from analysis.report.context import Section, open_run


def _svg(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _diagnostics(n):
    rng = np.random.default_rng(3)
    re = pd.DataFrame({"(Intercept)": rng.normal(size=50), "week": rng.normal(size=50)})
    return figures.residual_diagnostics(rng.normal(size=n), rng.normal(size=n), re)


def test_many_residuals_become_one_image_inside_the_svg():
    big = _svg(_diagnostics(figures.RASTER_POINTS + 20000))
    small = _svg(_diagnostics(figures.RASTER_POINTS))
    assert big.count(b"<image") == 2  # residuals vs fitted, QQ plot
    assert b"<image" not in small     # at or below the limit every point stays a vector mark
    assert len(big) < 1_000_000       # as vector marks 22,000 points take ~5 MB


def test_a_written_figure_is_displayed_from_its_file(tmp_path):
    (tmp_path / "run.yaml").write_text("name: t\ndata: log.csv\n")
    ctx = open_run(tmp_path / "run.yaml", tmp_path / "run", section="test")
    fig = ctx.figure("diag", _diagnostics(100))
    path = tmp_path / "run" / "figures" / "diag.svg"
    path.write_bytes(path.read_bytes().replace(b"</svg>", b"<desc>from the file</desc></svg>"))
    shown = Section(figures={"diag": fig}).figure("diag")
    assert "<desc>from the file</desc>" in shown.svg


def test_a_point_of_the_residual_plots_costs_almost_nothing_past_the_limit():
    # The only figure that grows with the data is the residual diagnostics (a point a visit row
    # in each of its two panels). The executed notebook holds its SVG as text and the researcher
    # page as base64 (x 4/3): at 20,000 patients (~150,000 rows) a page stays under 5 MB only if
    # a row costs well under 5e6 / (150000 * 4/3) = 25 bytes of SVG. As vector marks a row costs
    # ~290 bytes; rasterised ~0.2 (the image grows with its pixels, not with the points).
    n1, n2 = figures.RASTER_POINTS + 1, figures.RASTER_POINTS + 40000
    per_row = (len(_svg(_diagnostics(n2))) - len(_svg(_diagnostics(n1)))) / (n2 - n1)
    assert per_row < 25, f"{per_row:.1f} bytes a row"
