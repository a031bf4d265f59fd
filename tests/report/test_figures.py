"""analysis.report.figures: large scatter layers are rasterised inside the SVG; a figure written by
the run context is displayed from its file, not drawn again."""

import io

import numpy as np
import pytest
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


# -- legends below the axes never sit on the x-axis label --------------------------------------
def _table(n):
    return pd.DataFrame({"arm": [f"a{i}" for i in range(n)], "label": [f"arm {i}" for i in range(n)],
                         "est": np.linspace(0.5, 1.5, n), "lo": np.linspace(0.3, 1.2, n),
                         "hi": np.linspace(0.8, 2.0, n), "claim": 0.4})


def _legend_clashes(fig):
    """Legend boxes that overlap an x-axis label or x tick label, or leave the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends, "the figure has no legend to check"
    clashes = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if not (box.x0 >= fig.bbox.x0 - 1 and box.y0 >= fig.bbox.y0 - 1
                and box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1):
            clashes.append("outside the figure")
        for ax in fig.axes:
            texts = [ax.xaxis.label] + [t for t in ax.get_xticklabels() if t.get_text()]
            clashes += [t.get_text() for t in texts if t.get_window_extent(renderer).overlaps(box)]
    return clashes


@pytest.mark.parametrize("rows", [1, 2, 6])
def test_a_legend_below_the_axes_leaves_the_axis_label_readable(rows):
    # The episodes forest of a two-arm trial (MASS epil: one rate ratio) has one row; its
    # legend used to be anchored 0.3 axes heights below and covered "rate ratio ...".
    t = _table(rows)
    drawn = {
        "forest": figures.forest(t, "label", "est", "lo", "hi", "Rate ratio", "rate ratio against usual care",
                                 claimed="claim", reference_label="no difference"),
        "bars": figures.bars_by_arm(t, "est", "lo", "hi", "Responders", "share responding", control="a0"),
        "caterpillar": figures.caterpillar(t, "label", "est", "lo", "hi", "Clinics", "effect",
                                           highlight="arm 0"),
    }
    for name, fig in drawn.items():
        assert _legend_clashes(fig) == [], name


def test_the_funnel_legend_leaves_the_axis_label_readable():
    points = pd.DataFrame({"label": list("ABCDE"), "n_patients": [10, 20, 30, 40, 50],
                           "adjusted_change": [1, 2, 0, -1, 0.5]})
    limits = pd.DataFrame({"n_patients": [5, 50], "lower_95": [-3, -1], "upper_95": [3, 1],
                           "lower_99.8": [-4, -1.5], "upper_99.8": [4, 1.5]})
    assert _legend_clashes(figures.funnel_plot(points, limits, 0.0, "Funnel", "change", highlight="A")) == []
