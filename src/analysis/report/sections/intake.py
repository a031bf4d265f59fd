"""Notebook 01 — what came in: rows read and used, columns mapped, dropped and ignored, arms,
switchers, and k-anonymity over the quasi-identifiers present."""

from __future__ import annotations

import pandas as pd

from analysis.report import figures
from analysis.report.context import RunContext, Section
from analysis.report.disclosure import display_count


def run(ctx: RunContext) -> Section:
    validated, arms = ctx.prepare()
    k = ctx.cfg.disclosure_threshold
    visits = arms.data
    n_clinics = int(visits["clinic_id"].nunique()) if "clinic_id" in visits else 1

    intake = pd.DataFrame([
        {"item": "rows read", "value": validated.n_rows_read},
        {"item": "rows used", "value": validated.n_rows},
        {"item": "patients", "value": validated.n_patients},
        {"item": "clinics", "value": n_clinics},
        {"item": "patients who switched treatment", "value": display_count(arms.switchers, k)},
    ])
    columns = pd.DataFrame(
        [{"contract column": c, "file column": f, "status": "used"} for c, f in validated.columns_used.items()]
        + [{"contract column": "", "file column": f, "status": "dropped (drop:)"} for f in validated.dropped]
        + [{"contract column": "", "file column": f, "status": "ignored"} for f in validated.ignored]
    )
    arm_table = arms.table.copy()
    arm_table["n_switchers"] = [display_count(n, k) for n in arm_table["n_switchers"]]
    arm_table = ctx.public_table("arms", arm_table, key_columns=["arm"])
    figs = {"arms": ctx.figure("patients_by_arm", figures.patients_by_arm(
        arm_table, colours=figures.treatment_colours(ctx.cfg.interventions, ctx.cfg.control),
        control=ctx.cfg.control))} if len(arm_table) else {}
    kanon = validated.k_anonymity.copy()
    below = int(kanon["below_threshold"].sum()) if len(kanon) else 0
    kanon = ctx.public_table("k_anonymity", kanon.drop(columns=["below_threshold"], errors="ignore"))
    ctx.public_table("intake", intake.astype({"value": str}), count_column=None)
    ctx.public_table("columns", columns, count_column=None)

    ctx.results("data", {
        "rows_read": validated.n_rows_read, "rows_used": validated.n_rows,
        "n_patients": validated.n_patients, "n_clinics": n_clinics,
        "input_sha256": validated.sha256,
        "arms": arm_table[["arm", "n_patients"]],
        "control": ctx.cfg.control, "control_present": arms.control_present,
        "k_anonymity_groups_below_threshold": below,
        "columns_dropped": list(validated.dropped), "columns_ignored": list(validated.ignored),
    })
    sentences = [
        f"The log had {validated.n_rows_read} visit rows from {validated.n_patients} patients "
        f"in {n_clinics} clinic{'s' if n_clinics != 1 else ''}; {validated.n_rows} rows passed every check.",
        f"Each patient is analysed in one treatment arm (the treatment given at most visits); "
        f"{display_count(arms.switchers, k)} patients received more than one treatment.",
    ]
    if not arms.control_present:
        sentences.append(f"There is no {ctx.cfg.control} (comparison) arm, so treatments cannot be "
                         "compared against it; only changes over time are shown.")
    if below:
        sentences.append(f"{below} combinations of age band, sex and clinic have fewer than {k} patients; "
                         "they are withheld from every table meant for readers.")
    return Section(sentences, {"intake": intake, "columns": columns, "arms": arm_table,
                               "k_anonymity": kanon}, figs)
