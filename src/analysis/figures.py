"""Figures for the report, drawn from tidy tables that already passed disclosure control.

Every function takes a tidy table and returns a matplotlib Figure; saving (deterministic SVG) is
the run context's job. Plain titles and axis labels say what a clinic owner sees.
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

sns.set_theme(style="whitegrid", context="notebook")


def _palette(levels) -> dict:
    return dict(zip(levels, sns.color_palette("colorblind", len(levels))))


def bands_by_arm(table: pd.DataFrame, y: str, title: str, ylabel: str, x: str = "week",
                 low: str = "conf_low", high: str = "conf_high") -> plt.Figure:
    """One line per arm with its interval as a band (rows with missing values are skipped)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    data = table.dropna(subset=[y])
    arms = list(dict.fromkeys(data["arm"]))
    colours = _palette(arms)
    for arm in arms:
        part = data[data["arm"] == arm].sort_values(x)
        ax.plot(part[x], part[y], marker="o", ms=3, label=str(arm), color=colours[arm])
        ax.fill_between(part[x], part[low], part[high], alpha=0.15, color=colours[arm])
    ax.set(title=title, xlabel="weeks since first visit", ylabel=ylabel)
    if arms:
        ax.legend(title="treatment", fontsize="small", frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def forest(table: pd.DataFrame, label: str, estimate: str, low: str, high: str, title: str,
           xlabel: str, reference: float = 1.0, log_scale: bool = True,
           claimed: str | None = None) -> plt.Figure:
    """Estimates with intervals, one row each; a dashed line at no effect, diamonds at claims."""
    data = table.dropna(subset=[estimate]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.55 * max(len(data), 2) + 1.4))
    ypos = np.arange(len(data))[::-1]
    ax.errorbar(data[estimate], ypos, xerr=[data[estimate] - data[low], data[high] - data[estimate]],
                fmt="o", color="#1f4e79", capsize=3, label="estimate, 95% interval")
    if claimed and claimed in data:
        ax.scatter(data[claimed], ypos, marker="D", color="#c0392b", zorder=3, label="claimed")
    ax.axvline(reference, ls="--", color="grey", lw=1)
    ax.set_yticks(ypos, data[label].astype(str))
    if log_scale:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.25, 0.5, 0.75, 1, 1.5, 2, 4]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(title=title, xlabel=xlabel)
    ax.legend(fontsize="small", frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.tight_layout()
    return fig


def residual_diagnostics(fitted: np.ndarray, residuals: np.ndarray, random_effects: pd.DataFrame) -> plt.Figure:
    """Residuals vs fitted, normal QQ of residuals, and histograms of the random effects.

    Per-patient values without ids: this figure belongs in the researcher view only.
    """
    n_re = max(len(random_effects.columns), 1)
    fig, axes = plt.subplots(1, 2 + n_re, figsize=(4 * (2 + n_re), 3.6))
    axes[0].scatter(fitted, residuals, s=4, alpha=0.4)
    axes[0].axhline(0, color="grey", lw=1)
    axes[0].set(title="residuals vs fitted", xlabel="fitted", ylabel="residual")
    (osm, osr), (slope, intercept, _) = stats.probplot(residuals, dist="norm")
    axes[1].scatter(osm, osr, s=4, alpha=0.4)
    axes[1].plot(osm, slope * np.asarray(osm) + intercept, color="#c0392b", lw=1)
    axes[1].set(title="normal QQ plot of residuals", xlabel="theoretical quantile", ylabel="residual")
    for ax, col in zip(axes[2:], random_effects.columns):
        ax.hist(random_effects[col].to_numpy(dtype=float), bins=30, color="#1f4e79", alpha=0.8)
        ax.set(title=f"patient random effect: {col}", xlabel="conditional mode")
    fig.tight_layout()
    return fig


def bars_by_arm(table: pd.DataFrame, y: str, low: str, high: str, title: str, ylabel: str,
                reference: float | None = None) -> plt.Figure:
    """One bar per arm with an interval (e.g. responder share, percent change)."""
    data = table.dropna(subset=[y]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = _palette(list(data["arm"]))
    ax.bar(data["arm"].astype(str), data[y], color=[colours[a] for a in data["arm"]], alpha=0.85)
    ax.errorbar(data["arm"].astype(str), data[y], yerr=[data[y] - data[low], data[high] - data[y]],
                fmt="none", color="black", capsize=4)
    if reference is not None:
        ax.axhline(reference, color="grey", lw=1, ls="--")
    ax.set(title=title, ylabel=ylabel, xlabel="")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def claims_forest(table: pd.DataFrame) -> plt.Figure:
    """One panel per graded claim: estimate and interval, the claimed value (diamond), no effect (0).

    Each claim has its own units (percent fewer episodes, points of pain), so each gets its own axis;
    values are positive in the claimed direction.
    """
    data = table.dropna(subset=["estimate"]).reset_index(drop=True)
    n = max(len(data), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 1.25 * n + 0.6), squeeze=False)
    for ax, row in zip(axes[:, 0], data.itertuples()):
        ax.errorbar([row.estimate], [0], xerr=[[row.estimate - row.conf_low], [row.conf_high - row.estimate]],
                    fmt="o", color="#1f4e79", capsize=4)
        if row.claimed is not None and not pd.isna(row.claimed):
            ax.scatter([row.claimed], [0], marker="D", color="#c0392b", zorder=3)
        ax.axvline(0, ls="--", color="grey", lw=1)
        ax.set_yticks([])
        ax.set_title(f"{row.id}: {row.verdict}", fontsize="small", loc="left")
        ax.set_xlabel(str(row.units), fontsize="x-small")
        ax.tick_params(axis="x", labelsize="x-small")
    fig.suptitle("Claims: estimate with 95% interval (dot), claimed value (diamond), no effect (dashed)",
                 fontsize="small")
    fig.tight_layout()
    return fig
