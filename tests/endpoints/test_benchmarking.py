"""analysis.endpoints.benchmarking and notebook 07 (steps/benchmarking_report.py).

Regression tests against R: tests/reference/r_benchmarking.json, made by
tests/reference/r_benchmarking.R (R 4.2.2, lme4 1.1-31) from r_clinic_lmm.csv and
r_benchmarking.csv: lme4's ranef(condVar = TRUE), the prediction-error SD from Henderson's
equations written out in R, and Spiegelhalter's (2005) funnel quantities coded by hand in R.
Hand-computed checks (closed forms, not the package's code path): shrinkage in a balanced
random-intercept design, and funnel limits target ± z·σ/√n for normal data.
Privacy: letters hide clinic ids, small clinics are not shown on their own, an id is never markup.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import PainModelOptions, parse_config
from analysis.endpoints.benchmarking import (
    clinic_effects,
    clinic_letters,
    control_limits,
    fit_clinic_effects,
    funnel,
    letter,
    patient_changes,
)
from analysis.errors import ConfigError
from analysis.models.lmm import fit_lmm
from analysis.report.context import open_run
from analysis.report.sections import benchmarking as benchmarking_report
from analysis.run.runner import run_suite
from analysis.studies.simulate import simulate_log

ROOT = Path(__file__).resolve().parents[2]
REF = Path(__file__).resolve().parents[1] / "reference"
RB = json.loads((REF / "r_benchmarking.json").read_text())
Z95, Z998 = 1.959963984540054, 3.090232306167813  # R: qnorm(0.975), qnorm(0.999)
XSS = "<script>alert(1)</script>"


# -- regression against R ------------------------------------------------------------------------
def test_clinic_modes_and_conditional_sds_equal_lme4():
    # R: lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)), bobyqa
    ref = RB["clinic_slope_reml"]
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    fit = fit_lmm(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care'))", "patient_id", "slope",
                  clinic="clinic_id")
    table = clinic_effects(fit)
    assert list(table["clinic"]) == ref["level"]
    # r_benchmarking.json: clinic_slope_reml.mode (ranef(m)$clinic_id)
    assert np.allclose(table["estimate"], ref["mode"], rtol=1e-4, atol=1e-5)
    # clinic_slope_reml.condsd_lme4 (sqrt(attr(ranef(m, condVar = TRUE)$clinic_id, "postVar")))
    assert np.allclose(table["cond_sd_beta_fixed"], ref["condsd_lme4"], rtol=1e-4)
    # clinic_slope_reml.pev_sd (sigma^2 [C^-1] from the mixed-model equations, written out in R)
    assert np.allclose(table["std_error"], ref["pev_sd"], rtol=1e-4)
    assert (table["std_error"] > table["cond_sd_beta_fixed"]).all()  # beta's uncertainty adds
    assert np.allclose(table["conf_high"] - table["estimate"], Z95 * table["std_error"])
    # the modes agree with the fit's own conditional modes (another code path: the profiled deviance)
    own = fit.random_effects[fit.random_effects["group"] == "clinic_id"]["(Intercept)"].to_numpy()
    assert np.allclose(table["estimate"], own, atol=1e-9)


def test_clinic_effects_equal_henderson_equations_written_out_densely():
    # The slow path: C = [[X'X, X'U], [U'X, U'U + I]] with the whole U = Z Lambda (clinic and
    # patient columns) as one dense matrix, inverted; clinic_effects eliminates patients block by
    # block and sums the clinic blocks by clinic instead.
    d = pd.read_csv(REF / "r_clinic_lmm.csv")
    fit = fit_lmm(d, "pain_score ~ week * C(arm, Treatment(reference='usual_care'))", "patient_id", "slope",
                  clinic="clinic_id")
    g = fit.design
    theta = np.asarray(fit.theta, float)
    X, y, Z = np.asarray(g.X, float), np.asarray(g.y, float), np.asarray(g.Z, float)
    n, p = X.shape
    k, m, q = len(g.clinic_labels), len(g.patient_labels), Z.shape[1]
    lam = np.array([[theta[0], 0.0], [theta[1], theta[2]]])  # lme4: theta = Lambda[1,1], [2,1], [2,2]
    U = np.zeros((n, k + m * q))
    U[np.arange(n), g.clinic_of_patient[g.patient]] = theta[-1]
    for j in range(q):
        U[np.arange(n), k + g.patient * q + j] = (Z @ lam)[:, j]
    C = np.block([[X.T @ X, X.T @ U], [U.T @ X, U.T @ U + np.eye(k + m * q)]])
    solution = np.linalg.solve(C, np.r_[X.T @ y, U.T @ y])
    Cinv = np.linalg.inv(C)
    sigma2, lam_c2 = float(fit.sigma) ** 2, theta[-1] ** 2
    UtU = U.T @ U + np.eye(k + m * q)
    table = clinic_effects(fit)
    assert np.allclose(table["estimate"], theta[-1] * solution[p:p + k], rtol=1e-9, atol=1e-12)
    assert np.allclose(table["std_error"] ** 2, sigma2 * lam_c2 * np.diag(Cinv)[p:p + k], rtol=1e-9)
    assert np.allclose(table["cond_sd_beta_fixed"] ** 2,
                       sigma2 * lam_c2 * np.diag(np.linalg.inv(UtU))[:k], rtol=1e-9)


def test_benchmarking_model_with_baseline_equals_lme4():
    # R: lmer(pain_score ~ week * arm + baseline_pain_score + (1 | clinic_id) + (1 + week | clinic_id:patient_id))
    ref = RB["clinic_baseline_reml"]
    d = pd.read_csv(REF / "r_benchmarking.csv")
    res = fit_clinic_effects(d, PainModelOptions(), control="usual_care")
    assert res.reason is None and "baseline_pain_score" in res.formula
    assert res.clinic_sd == pytest.approx(ref["clinic_sd"], rel=1e-4)  # clinic_baseline_reml.clinic_sd
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-5)  # clinic_baseline_reml.sigma
    t = res.table
    assert list(t["clinic"]) == ref["level"]
    assert np.allclose(t["estimate"], ref["mode"], rtol=1e-4, atol=1e-5)  # clinic_baseline_reml.mode
    assert np.allclose(t["cond_sd_beta_fixed"], ref["condsd_lme4"], rtol=1e-4)  # .condsd_lme4
    assert np.allclose(t["std_error"], ref["pev_sd"], rtol=1e-4)  # .pev_sd
    assert sum(res.n_patients.values()) == 80


@pytest.mark.parametrize("key, adjust", [("funnel_baseline", True), ("funnel_arm_only", False)])
@pytest.mark.parametrize("method", ["none", "multiplicative", "additive"])
def test_funnel_equals_spiegelhalter_coded_in_r(key, adjust, method):
    ref = RB[key]  # r_benchmarking.json: funnel_baseline / funnel_arm_only (lm() case mix, by hand)
    d = pd.read_csv(REF / "r_benchmarking.csv")
    changes = patient_changes(d, week=12, min_follow_up_week=4)
    assert len(changes) == ref["n_patients_total"]
    changes["unit"] = changes["clinic"]
    res = funnel(changes, "unit", adjust_for_baseline=adjust, method=method)
    u = res.units
    assert list(u["unit"]) == ref["clinic"] and list(u["n_patients"]) == ref["n"]
    assert res.target == pytest.approx(ref["target"], rel=1e-12)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-9)
    assert np.allclose(u["adjusted_change"], ref["adjusted_change"], rtol=1e-9)
    assert np.allclose(u["z"], ref["z"], rtol=1e-8)
    disp = res.dispersion
    assert disp["phi"] == pytest.approx(ref["phi"], rel=1e-9)
    assert disp["tau2"] == pytest.approx(ref["tau2"], rel=1e-8, abs=1e-12)
    assert disp["chisq"] == pytest.approx(ref["overdispersion_chisq"], rel=1e-9)
    assert disp["p_value"] == pytest.approx(ref["overdispersion_p"], rel=1e-8)
    assert np.allclose(u["upper_95"], ref[f"upper95_{method}"], rtol=1e-9)
    assert np.allclose(u["lower_99.8"], ref[f"lower998_{method}"], rtol=1e-9)


# -- hand-computed -------------------------------------------------------------------------------
def test_shrinkage_matches_the_closed_form_and_pulls_towards_zero():
    # Balanced design, random intercepts for patients and clinics: 1 is an eigenvector of each
    # clinic's covariance, so c_k = B_k * (mean residual of clinic k), with
    # B_k = s_c^2 / (s_c^2 + s_p^2 / m_k + s^2 / (m_k * n)), m_k patients of n visits each.
    rng = np.random.default_rng(7)
    sizes, weeks = [2, 4, 8, 16, 32], np.arange(0, 12, 2.0)
    rows = []
    for k, m_k in enumerate(sizes):
        c = rng.normal(0, 0.8)
        for i in range(m_k):
            u = rng.normal(0, 1.0)
            for w in weeks:
                rows.append((f"K{k}", f"K{k}P{i}", w, 6 + c + u - 0.1 * w + rng.normal(0, 0.7)))
    d = pd.DataFrame(rows, columns=["clinic_id", "patient_id", "week", "pain"])
    fit = fit_lmm(d, "pain ~ week", "patient_id", "intercept", clinic="clinic_id")
    vc = fit.variance_components.set_index("group")["estimate"]
    s_c, s_p, s = vc["clinic_id"], vc["clinic_id:patient_id"], fit.sigma
    table = clinic_effects(fit).set_index("clinic")
    resid = d["pain"] - fit.beta[0] - fit.beta[1] * d["week"]
    raw = resid.groupby(d["clinic_id"]).mean()
    n = len(weeks)
    for k, m_k in enumerate(sizes):
        shrink = s_c ** 2 / (s_c ** 2 + s_p ** 2 / m_k + s ** 2 / (m_k * n))
        assert 0 < shrink < 1
        assert table.loc[f"K{k}", "estimate"] == pytest.approx(shrink * raw[f"K{k}"], rel=1e-7)
        assert table.loc[f"K{k}", "raw_mean_residual"] == pytest.approx(raw[f"K{k}"], rel=1e-9)
        assert abs(table.loc[f"K{k}", "estimate"]) < abs(raw[f"K{k}"])
    ratio = (table["estimate"] / table["raw_mean_residual"]).loc[[f"K{k}" for k in range(len(sizes))]]
    assert ratio.is_monotonic_increasing  # the fewer patients, the stronger the pull towards 0


def test_funnel_limits_for_normal_data_are_target_plus_minus_z_sigma_over_root_n():
    rng = np.random.default_rng(3)
    n_by_clinic = {"K1": 5, "K2": 20, "K3": 45, "K4": 80}
    change = np.concatenate([rng.normal(-1.5, 1.2, n) for n in n_by_clinic.values()])
    units = np.repeat(list(n_by_clinic), list(n_by_clinic.values()))
    changes = pd.DataFrame({"unit": units, "arm": "usual_care", "baseline": 6.0, "change": change})
    res = funnel(changes, "unit", adjust_for_baseline=False, method="none")
    target, sigma = change.mean(), change.std(ddof=1)  # one arm: E_i is the overall mean
    assert res.target == pytest.approx(target) and res.sigma == pytest.approx(sigma)
    for row in res.units.to_dict("records"):
        n = n_by_clinic[row["unit"]]
        assert row["adjusted_change"] == pytest.approx(change[units == row["unit"]].mean())
        assert row["upper_95"] == pytest.approx(target + Z95 * sigma / np.sqrt(n))
        assert row["lower_95"] == pytest.approx(target - Z95 * sigma / np.sqrt(n))
        assert row["upper_99.8"] == pytest.approx(target + Z998 * sigma / np.sqrt(n))
        assert row["lower_99.8"] == pytest.approx(target - Z998 * sigma / np.sqrt(n))
    # overdispersion without Winsorising: phi = mean z^2; tau^2 by DerSimonian-Laird
    multi = funnel(changes, "unit", adjust_for_baseline=False, method="multiplicative", winsorize=0.0)
    z = (res.units["adjusted_change"] - target) / (sigma / np.sqrt(res.units["n_patients"]))
    phi = float(np.mean(z ** 2))
    assert multi.dispersion["phi"] == pytest.approx(phi)
    low, high = control_limits(target, sigma, 20, "95", phi=max(phi, 1.0))
    assert high == pytest.approx(target + Z95 * np.sqrt(max(phi, 1.0)) * sigma / np.sqrt(20))
    w = res.units["n_patients"].to_numpy() / sigma ** 2
    tau2 = max(0.0, (4 * phi - 3) / (w.sum() - (w ** 2).sum() / w.sum()))
    additive = funnel(changes, "unit", adjust_for_baseline=False, method="additive", winsorize=0.0)
    assert additive.tau2_used == pytest.approx(tau2, abs=1e-12)
    assert additive.limits(20, "99.8")[1] == pytest.approx(target + Z998 * np.sqrt(sigma ** 2 / 20 + tau2))


def test_letters_follow_size_not_ids():
    assert [letter(i) for i in (0, 1, 25, 26, 27, 701, 702)] == ["A", "B", "Z", "AA", "AB", "ZZ", "AAA"]
    sizes = {"C01": 30, "C02": 80, "C03": 12, "C04": 5, "C05": 45}
    letters = clinic_letters(sizes, threshold=11)
    assert letters == {"C02": "A", "C05": "B", "C01": "C", "C03": "D"}  # by size; C04 is too small
    renamed = clinic_letters({f"X{9 - i}": n for i, n in enumerate(sizes.values())}, threshold=11)
    assert sorted(renamed.values()) == sorted(letters.values())
    assert clinic_letters(sizes, 11, exclude="C02") == {"C05": "A", "C01": "B", "C03": "C"}
    # ties are not broken by the id: across many tied pairs, id order and letter order disagree
    agree = [clinic_letters({f"T{i}a": 20, f"T{i}b": 20}, 11)[f"T{i}a"] == "A" for i in range(40)]
    assert 5 < sum(agree) < 35


def test_config_section_is_validated():
    cfg = parse_config({"name": "t", "data": "x.csv", "benchmarking": {"clinic_id": "C01", "overdispersion": "none"}})
    assert cfg.benchmarking.clinic_id == "C01" and cfg.benchmarking.winsorize == 0.1
    with pytest.raises(ConfigError, match="unknown key 'benchmarking.clinic'"):
        parse_config({"name": "t", "data": "x.csv", "benchmarking": {"clinic": "C01"}})
    with pytest.raises(ConfigError, match="overdispersion"):
        parse_config({"name": "t", "data": "x.csv", "benchmarking": {"overdispersion": "phi"}})
    with pytest.raises(ConfigError, match="min_follow_up_week"):
        parse_config({"name": "t", "data": "x.csv", "benchmarking": {"week": 2, "min_follow_up_week": 4}})


# -- the notebook step ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def network_log():
    """A simulated network of 3 clinics plus two small clinics of 8 complete patients each."""
    log, _ = simulate_log(n_patients=150, n_clinics=3, seed=11)
    recorded = log.dropna(subset=["pain_score"]).groupby("patient_id").size()
    complete = sorted(recorded[recorded >= 6].index)  # baseline and a score at week >= 4
    log = log.copy()
    log.loc[log["patient_id"].isin(complete[:8]), "clinic_id"] = "S1"
    log.loc[log["patient_id"].isin(complete[8:16]), "clinic_id"] = "S2"
    return log


def _ctx(folder: Path, log: pd.DataFrame, extra: str = ""):
    folder.mkdir(parents=True, exist_ok=True)
    log.to_csv(folder / "log.csv", index=False)
    (folder / "run.yaml").write_text("name: t\ndata: log.csv\n" + extra)
    return open_run(folder / "run.yaml", folder / "run", section="07_benchmarking")


def _public_text(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="ignore") for p in run_dir.rglob("*")
                     if p.is_file() and "private" not in p.parts and p.suffix in {".csv", ".json", ".svg", ".html"})


def test_network_view_shows_letters_only_and_pools_small_clinics(tmp_path, network_log):
    ctx = _ctx(tmp_path, network_log)
    out = benchmarking_report.run(ctx)
    big = {"C01", "C02", "C03"}
    effects = pd.read_csv(ctx.run_dir / "tables" / "benchmarking_clinic_effects.csv")
    assert sorted(effects["term"]) == ["A", "B", "C"]  # the three large clinics; S1, S2 left out
    assert (effects["n_patients"] >= 11).all()
    funnel_table = pd.read_csv(ctx.run_dir / "tables" / "benchmarking_funnel.csv")
    assert list(funnel_table["term"]) == ["A", "B", "C", "other small clinics"]
    assert funnel_table.set_index("term").loc["other small clinics", "n_patients"] == 16
    text = _public_text(ctx.run_dir)
    for clinic in big | {"S1", "S2"}:
        assert not re.search(rf"\b{clinic}\b", text), f"clinic id {clinic} in a public file"
    saved = json.loads((ctx.run_dir / "results" / "benchmarking.json").read_text())
    assert saved["status"] == "estimated" and saved["highlighted"]["requested"] is False
    # Two clinics below the threshold rest on fewer than k patients: their count is withheld too.
    assert saved["n_clinics"] == 5 and saved["n_clinics_below_threshold"] is None
    assert saved["funnel"]["definition"]["small_clinics"] == "pooled as 'other small clinics'"
    assert saved["funnel"]["overdispersion"]["method"] == "additive"
    assert {"caterpillar", "funnel"} <= set(out.figures)
    # How many clinics are small is itself a count below k: not printed.
    assert any("Some clinics with fewer than 11 patients are not shown" in s for s in out.sentences)


def test_highlight_from_config_and_small_pool_left_out(tmp_path, network_log):
    log = network_log[network_log["clinic_id"] != "S2"].copy()
    s1 = sorted(log.loc[log["clinic_id"] == "S1", "patient_id"].unique())
    log.loc[log["patient_id"].isin(s1[5:]), "clinic_id"] = "S3"  # small clinics of 5 and 3 patients
    ctx = _ctx(tmp_path, log, "benchmarking:\n  clinic_id: C02\n  overdispersion: none\n")
    out = benchmarking_report.run(ctx)  # the notebook's default parameter "" defers to the config
    effects = pd.read_csv(ctx.run_dir / "tables" / "benchmarking_clinic_effects.csv")
    assert list(effects["term"]) == ["your clinic", "A", "B"]
    funnel_table = pd.read_csv(ctx.run_dir / "tables" / "benchmarking_funnel.csv")
    assert "other small clinics" not in set(funnel_table["term"])  # 5 + 3 patients < 11: left out
    saved = json.loads((ctx.run_dir / "results" / "benchmarking.json").read_text())
    assert saved["highlighted"] == {"requested": True, "in_log": True, "shown": True, "label": "your clinic"}
    assert saved["funnel"]["n_patients"] == funnel_table["n_patients"].sum()
    assert saved["funnel"]["definition"]["small_clinics"] == "left out (together below the threshold)"
    assert any(s.startswith("Your clinic: follow-up pain") for s in out.sentences)
    assert any(s.startswith("Your clinic's patients changed") for s in out.sentences)
    assert not re.search(r"\b(C0[123]|S[13])\b", _public_text(ctx.run_dir))


@pytest.mark.parametrize("case", ["one clinic", "no pain"])
def test_not_possible_says_why(tmp_path, case):
    log, _ = simulate_log(n_patients=40, n_clinics=2, seed=5)
    log = log.drop(columns=["clinic_id"]) if case == "one clinic" else log.drop(columns=["pain_score"])
    ctx = _ctx(tmp_path, log)
    out = benchmarking_report.run(ctx)
    saved = json.loads((ctx.run_dir / "results" / "benchmarking.json").read_text())
    reason = "the log has one clinic" if case == "one clinic" else "the log has no pain_score values"
    assert saved["status"].startswith(f"not possible: {reason}")
    assert out.sentences[0].startswith(f"Benchmarking is not possible: {reason}")
    assert not out.figures and not out.tables


def test_clinic_id_is_never_markup(tmp_path, network_log):
    log = network_log.copy()
    log.loc[log["clinic_id"] == "C01", "clinic_id"] = XSS
    log.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "run.yaml").write_text(f"name: t\ndata: log.csv\nbenchmarking:\n  clinic_id: '{XSS}'\n")
    outcome = run_suite(tmp_path / "run.yaml", out=tmp_path / "run", progress=False,
                        notebooks=[ROOT / "notebooks" / "07_benchmarking.py"])
    assert outcome.status == "succeeded", outcome.error
    run_dir = tmp_path / "run"
    saved = json.loads((run_dir / "results.json").read_text())["benchmarking"]
    assert saved["highlighted"]["shown"] is True  # the clinic was found and shown as "your clinic"
    owner = (run_dir / "owner" / "07_benchmarking.html").read_text()
    assert "&lt;script&gt;alert" in owner  # named, as text
    for path in [*run_dir.rglob("*.html"), *run_dir.rglob("*.svg"), *run_dir.rglob("*.csv")]:
        assert XSS not in path.read_text(errors="ignore"), path.relative_to(run_dir)
    # an id that is not in the log is named as text too, and nothing is highlighted
    ctx = open_run(tmp_path / "run.yaml", tmp_path / "run2", section="07_benchmarking")
    out = benchmarking_report.run(ctx, clinic_id="<img src=x onerror=alert(1)>")
    note = next(s for s in out.sentences if "is not in this log" in s)
    assert "<img" not in note and "&lt;img" in note
