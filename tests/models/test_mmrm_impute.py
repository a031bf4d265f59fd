"""Multiple imputation from an MMRM and Rubin's rules.

Rubin's rules: tests/reference/mmrm/r_rubin.R (base R, as mice::pool computes them with
Barnard-Rubin df) and its output r_rubin.json; plus the closed form when every imputation agrees.
Imputation: the conditional normal is checked through the precision matrix (a different route
from the code's regression form) by the mean and covariance of many draws.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import ConfigError
from analysis.models.mmrm_impute import impute, rubin

REF = json.loads((Path(__file__).parents[1] / "reference" / "mmrm" / "r_rubin.json").read_text())


@pytest.mark.parametrize("key, dfcom", [("dfcom_150", 150.0), ("dfcom_inf", np.inf)])
def test_rubin_matches_r(key, dfcom):
    ours = rubin(REF["q"], REF["u"], dfcom)
    for name, value in REF[key].items():       # r_rubin.json, pool1(q, u, dfcom)
        assert ours[name] == pytest.approx(value, rel=1e-10), name


def test_rubin_closed_form_when_imputations_agree():
    # b = 0: T = ubar, lambda = 0, df = nu_obs = (n+1)/(n+3) n (Barnard & Rubin 1999, eq. 3)
    out = rubin([2.0] * 5, [0.25, 0.25, 0.3, 0.2, 0.25], df_complete=40)
    assert out["std_error"] == pytest.approx(0.5)
    assert out["df"] == pytest.approx(41 / 43 * 40)
    assert out["between"] == 0 and out["lambda"] == 0


def test_rubin_needs_two_imputations():
    with pytest.raises(ConfigError, match="at least 2 imputations"):
        rubin([1.0], [1.0])


class _Fit:
    """The fields impute() reads, for a 3-visit model with an intercept per visit."""
    covariance = "us"
    visits = ["1", "2", "3"]
    sigma = np.array([[4.0, 2.0, 1.0], [2.0, 5.0, 2.5], [1.0, 2.5, 6.0]])
    beta = np.array([1.0, 2.0, 3.0])
    theta = np.array([4.0, 2.0, 5.0, 1.0, 2.5, 6.0])


def test_conditional_draws_match_the_precision_form():
    fit = _Fit()
    one = np.array([[0.5, np.nan, np.nan], [np.nan, 4.0, np.nan]])
    n = 40000                                   # copies of each patient, one imputation
    y = np.repeat(one, n, axis=0)
    X = np.broadcast_to(np.eye(3), (2 * n, 3, 3))
    draws = impute(fit, y, X, 1, seed=7, draw=False)[0].reshape(2, n, 3).transpose(1, 0, 2)
    Q = np.linalg.inv(fit.sigma)
    for i, (M, O) in enumerate([([1, 2], [0]), ([0, 2], [1])]):
        mu = fit.beta
        qmm = Q[np.ix_(M, M)]
        mean = mu[M] - np.linalg.solve(qmm, Q[np.ix_(M, O)] @ (one[i, O] - mu[O]))
        got = draws[:, i][:, M]
        assert np.allclose(got.mean(axis=0), mean, atol=0.05)
        assert np.allclose(np.cov(got.T), np.linalg.inv(qmm), atol=0.1)
        assert np.all(draws[:, i, O] == one[i, O])        # observed values kept


def test_imputations_are_seeded():
    fit = _Fit()
    y = np.array([[0.5, np.nan, 1.0]])
    X = np.broadcast_to(np.eye(3), (1, 3, 3))
    a = impute(fit, y, X, 3, seed=[1, 16], draw=False)
    b = impute(fit, y, X, 3, seed=[1, 16], draw=False)
    c = impute(fit, y, X, 3, seed=[2, 16], draw=False)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
