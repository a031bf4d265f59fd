"""Figures for the report, drawn from tidy tables that already passed disclosure control.

Every function takes a tidy table and returns a matplotlib Figure; saving (deterministic SVG) is
the run context's job. Plain titles and axis labels say what a clinic owner sees.

A scatter layer of more than :data:`RASTER_POINTS` points is drawn as one image inside the SVG
(matplotlib's ``rasterized=True``; axes, labels and lines stay vector): every point is still
drawn, but 145,000 residuals as vector marks made a 42 MB SVG that took seconds to parse.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

# Figures are drawn ~6.4 in wide with 12 pt text, so that scaled to a 390 px phone the text is
# still about 10 px high.
sns.set_theme(style="whitegrid", context="notebook", font_scale=1.1)
# Labels come from the user (intervention names, clinic ids, outcome labels): a "$" or "\\frac{"
# in one must print as typed, never start mathtext (a parse error, or markup in a figure).
matplotlib.rcParams["text.parse_math"] = False

#: Scatter layers with more points than this are rasterised inside the SVG.
RASTER_POINTS = 2000
WIDTH = 6.4

# Okabe & Ito (2008), the colour-blind-safe palette; yellow last (weak on white). The comparison
# (control) arm is always dark grey and drawn as the reference.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442"]
CONTROL_COLOUR = "#4d4d4d"


def treatment_colours(interventions, control: str | None) -> dict[str, str]:
    """One colour per treatment, the same in every figure of a run (the config's order of
    interventions), the control arm grey."""
    others = [str(i) for i in interventions if i != control]
    colours = {arm: OKABE_ITO[i % len(OKABE_ITO)] for i, arm in enumerate(others)}
    if control is not None:
        colours[str(control)] = CONTROL_COLOUR
    return colours


def _label(arm) -> str:
    return _text(str(arm).replace("_", " "))


def _palette(levels, colours: dict | None = None) -> dict:
    colours = colours or {}
    spare = iter(c for c in OKABE_ITO if c not in colours.values())
    return {lvl: colours.get(str(lvl)) or next(spare, "#1f4e79") for lvl in levels}


def bands_by_arm(table: pd.DataFrame, y: str, title: str, ylabel: str, x: str = "week",
                 low: str = "conf_low", high: str = "conf_high", colours: dict | None = None,
                 control: str | None = None, xlabel: str = "weeks since the first visit") -> plt.Figure:
    """Each arm's line with its interval as a band; rows with missing values are skipped.

    With a ``control`` arm in the table and more than two other arms, one panel per treatment, each
    against the control (grey, dashed) as the reference: at most two bands a panel.
    """
    data = table.dropna(subset=[y])
    arms = list(dict.fromkeys(data["arm"]))
    palette = _palette(arms, colours)
    treated = [a for a in arms if a != control]
    facet = control in arms and len(treated) > 2
    panels = [[control, a] for a in treated] if facet else [arms]
    ncols = 2 if facet else 1
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, (2.7 if facet else 4.2) * nrows + 0.9),
                             sharex=True, sharey=True, squeeze=False)
    for ax, members in zip(axes.flat, panels):
        for arm in members:
            part = data[data["arm"] == arm].sort_values(x)
            ref = arm == control
            ax.plot(part[x], part[y], marker="o", ms=3, color=palette[arm], ls="--" if ref else "-",
                    label=_label(arm) + (" (comparison)" if ref else ""))
            ax.fill_between(part[x], part[low], part[high], alpha=0.12 if ref else 0.2, color=palette[arm])
        if facet:
            ax.set_title(_label(members[1]), fontsize="medium", color=palette[members[1]], fontweight="bold")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    fig.suptitle(_text(title), fontsize="large")
    if arms:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if facet:
            handles, labels = handles[:1], [labels[0] + ", dashed, in every panel"]
        fig.legend(handles, labels, loc="lower center", ncol=1 if facet else 2, frameon=False, fontsize="small",
                   bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.07 if facet else 0.12, 1, 1))
    return fig


def patients_by_arm(table: pd.DataFrame, colours: dict | None = None, control: str | None = None) -> plt.Figure:
    """Patients per treatment arm, one bar each in the treatment's colour (withheld rows skipped)."""
    data = table.dropna(subset=["n_patients"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.55 * max(len(data), 2) + 1.3))
    palette = _palette(list(data["arm"]), colours)
    ypos = np.arange(len(data))[::-1]
    ax.barh(ypos, data["n_patients"], color=[palette[a] for a in data["arm"]])
    ax.set_yticks(ypos, [_label(a) + (" (comparison)" if a == control else "") for a in data["arm"]])
    for y_, n in zip(ypos, data["n_patients"]):
        ax.annotate(f"{n:.0f}", (n, y_), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set(title="Patients in each treatment group", xlabel="patients", ylabel="")
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def forest(table: pd.DataFrame, label: str, estimate: str, low: str, high: str, title: str,
           xlabel: str, reference: float = 1.0, log_scale: bool = True,
           claimed: str | None = None, colours: dict | None = None,
           reference_label: str | None = None) -> plt.Figure:
    """Estimates with intervals, one row each; a dashed line at no effect, diamonds at claims."""
    data = table.dropna(subset=[estimate]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.55 * max(len(data), 2) + 1.6), layout="constrained")
    ypos = np.arange(len(data))[::-1]
    palette = _palette(list(data["arm"]), colours) if "arm" in data else {}
    for i, row in data.iterrows():
        ax.errorbar([row[estimate]], [ypos[i]], xerr=[[row[estimate] - row[low]], [row[high] - row[estimate]]],
                    fmt="o", capsize=3, color=palette.get(row.get("arm"), "#1f4e79"),
                    label="estimate, 95% interval" if i == 0 else None)
    if claimed and claimed in data:
        ax.scatter(data[claimed], ypos, marker="D", color="#c0392b", zorder=3, label="claimed")
    ax.axvline(reference, ls="--", color=CONTROL_COLOUR, lw=1.2, label=reference_label)
    ax.set_yticks(ypos, [_text(v) for v in data[label].astype(str)])
    if log_scale:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.25, 0.5, 0.75, 1, 1.5, 2, 4]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(title=title, xlabel=xlabel)
    _legend_below(fig, ax, ncol=2)
    return fig


def residual_diagnostics(fitted: np.ndarray, residuals: np.ndarray, random_effects: pd.DataFrame) -> plt.Figure:
    """Residuals vs fitted, normal QQ of residuals, and histograms of the random effects.

    Per-patient values without ids: this figure belongs in the researcher view only.
    """
    n_re = max(len(random_effects.columns), 1)
    fig, axes = plt.subplots(1, 2 + n_re, figsize=(4 * (2 + n_re), 3.6))
    raster = len(fitted) > RASTER_POINTS
    axes[0].scatter(fitted, residuals, s=4, alpha=0.4, rasterized=raster)
    axes[0].axhline(0, color="grey", lw=1)
    axes[0].set(title="residuals vs fitted", xlabel="fitted", ylabel="residual")
    (osm, osr), (slope, intercept, _) = stats.probplot(residuals, dist="norm")
    axes[1].scatter(osm, osr, s=4, alpha=0.4, rasterized=raster)
    axes[1].plot(osm, slope * np.asarray(osm) + intercept, color="#c0392b", lw=1)
    axes[1].set(title="normal QQ plot of residuals", xlabel="theoretical quantile", ylabel="residual")
    for ax, col in zip(axes[2:], random_effects.columns):
        ax.hist(random_effects[col].to_numpy(dtype=float), bins=30, color="#1f4e79", alpha=0.8)
        ax.set(title=f"patient random effect: {col}", xlabel="conditional mode")
    fig.tight_layout()
    return fig


def bars_by_arm(table: pd.DataFrame, y: str, low: str, high: str, title: str, ylabel: str,
                reference: float | None = None, colours: dict | None = None,
                control: str | None = None) -> plt.Figure:
    """One horizontal bar per arm with an interval (e.g. responder share, percent change); the
    control arm's value is drawn as a dotted reference line across all bars. ``ylabel`` names the
    value axis."""
    data = table.dropna(subset=[y]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.6 * max(len(data), 2) + 1.6), layout="constrained")
    palette = _palette(list(data["arm"]), colours)
    ypos = np.arange(len(data))[::-1]
    value = data[y].to_numpy(float)
    ax.barh(ypos, value, color=[palette[a] for a in data["arm"]], alpha=0.9)
    # Score intervals can put a bound a rounding error inside the estimate (0 responders): clip at 0.
    xerr = np.vstack([value - data[low].to_numpy(float), data[high].to_numpy(float) - value]).clip(min=0)
    ax.errorbar(value, ypos, xerr=xerr, fmt="none", color="black", capsize=4)
    if reference is not None:
        ax.axvline(reference, color="grey", lw=1, ls="--")
    if control is not None and control in set(data["arm"]):
        level = float(data.loc[data["arm"] == control, y].iloc[0])
        ax.axvline(level, color=CONTROL_COLOUR, lw=1.2, ls=":", label=f"{_label(control)} (comparison)")
    ax.set_yticks(ypos, [_label(a) for a in data["arm"]])
    ax.set(title=_text(title), xlabel=_text(ylabel), ylabel="")
    ax.grid(axis="y", visible=False)
    _legend_below(fig, ax, ncol=1)
    return fig


def claims_forest(table: pd.DataFrame) -> plt.Figure:
    """One panel per graded claim: estimate and interval, the claimed value (diamond), no effect (0).

    Each claim has its own units (percent fewer episodes, points of pain), so each gets its own axis;
    values are positive in the claimed direction.
    """
    data = table.dropna(subset=["estimate"]).reset_index(drop=True)
    n = max(len(data), 1)
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH, 1.45 * n + 0.8), squeeze=False)
    for ax, row in zip(axes[:, 0], data.itertuples()):
        ax.errorbar([row.estimate], [0], xerr=[[row.estimate - row.conf_low], [row.conf_high - row.estimate]],
                    fmt="o", color="#1f4e79", capsize=4)
        if row.claimed is not None and not pd.isna(row.claimed):
            ax.scatter([row.claimed], [0], marker="D", color="#c0392b", zorder=3)
        ax.axvline(0, ls="--", color="grey", lw=1)
        ax.set_yticks([])
        text = str(row.text) if len(str(row.text)) <= 48 else str(row.text)[:46].rstrip() + "…"
        ax.set_title(_text(f"“{text}”: {row.verdict}"), fontsize="small", loc="left")
        ax.set_xlabel(str(row.units), fontsize="x-small")
        ax.tick_params(axis="x", labelsize="x-small")
    fig.suptitle("Each claim: what the data show (dot, 95% interval),\nthe claimed value (diamond), no effect (dashed)",
                 fontsize="small")
    fig.tight_layout()
    return fig


def _text(value) -> str:
    """Text for a matplotlib label (mathtext is off, see the top of this module: shown as typed)."""
    return str(value)


def _legend_below(fig: plt.Figure, ax, ncol: int) -> None:
    """The axes' legend below everything the axes draw (tick labels and x-axis label included).

    An axes legend anchored at a fixed fraction below the axes (``bbox_to_anchor=(0.5, -0.3)``)
    lands on the x-axis label when the axes are short (one or two rows of a forest plot). The
    figure is laid out by matplotlib's constrained layout, which makes room for a figure legend
    placed ``outside lower center``.
    """
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small",
                   frameon=False)


def caterpillar(table: pd.DataFrame, label: str, estimate: str, low: str, high: str, title: str,
                xlabel: str, highlight: str | None = None, reference: float = 0.0) -> plt.Figure:
    """Clinic effects with intervals, sorted by estimate; the ``highlight`` row stands out.

    Rows with a missing estimate (withheld) are skipped.
    """
    data = table.dropna(subset=[estimate]).sort_values([estimate, label], kind="stable").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.42 * max(len(data), 3) + 1.5), layout="constrained")
    ypos = np.arange(len(data))
    is_hl = (data[label] == highlight).to_numpy() if highlight is not None else np.zeros(len(data), bool)
    for mask, colour, name in ((~is_hl, "#1f4e79", "clinic"), (is_hl, "#c0392b", _text(highlight))):
        if mask.any():
            est, lo, hi = (data.loc[mask, c].to_numpy(float) for c in (estimate, low, high))
            ax.errorbar(est, ypos[mask], xerr=np.vstack([est - lo, hi - est]), fmt="o", color=colour,
                        capsize=3, label=name)
    ax.axvline(reference, ls="--", color="grey", lw=1)
    ax.set_yticks(ypos, [_text(v) for v in data[label]])
    for tick, hl in zip(ax.get_yticklabels(), is_hl):
        if hl:
            tick.set_fontweight("bold")
            tick.set_color("#c0392b")
    ax.set(title=_text(title), xlabel=_text(xlabel))
    _legend_below(fig, ax, ncol=2)
    return fig


def funnel_plot(points: pd.DataFrame, limits: pd.DataFrame, target: float, title: str, ylabel: str,
                highlight: str | None = None, label: str = "label", n: str = "n_patients",
                y: str = "adjusted_change") -> plt.Figure:
    """A funnel plot: one point per unit against its number of patients, the target line, and
    95 % and 99.8 % control limits (``limits`` has ``n_patients`` and ``lower_95, upper_95,
    lower_99.8, upper_99.8``); each point is labelled, ``highlight`` in red."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.6), layout="constrained")
    lim = limits.sort_values(n)
    for level, style in (("95", "--"), ("99.8", ":")):
        ax.plot(lim[n], lim[f"lower_{level}"], ls=style, color="#555555", lw=1.2, label=f"{level}% limits")
        ax.plot(lim[n], lim[f"upper_{level}"], ls=style, color="#555555", lw=1.2)
    ax.axhline(target, color="#1f4e79", lw=1, label="network average")
    data = points.dropna(subset=[y]).sort_values([n, label], kind="stable")
    for row in data.itertuples(index=False):
        name, x_val, y_val = getattr(row, label), getattr(row, n), getattr(row, y)
        hl = highlight is not None and name == highlight
        ax.scatter([x_val], [y_val], s=60 if hl else 30, zorder=3, color="#c0392b" if hl else "#1f4e79",
                   marker="D" if hl else "o")
        ax.annotate(_text(name), (x_val, y_val), textcoords="offset points", xytext=(6, 4), fontsize="small",
                    color="#c0392b" if hl else "#222222", fontweight="bold" if hl else "normal")
    ax.set(title=_text(title), xlabel="patients in the comparison", ylabel=_text(ylabel))
    _legend_below(fig, ax, ncol=3)
    return fig
