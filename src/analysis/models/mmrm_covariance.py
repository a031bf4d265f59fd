"""Residual covariance structures for the MMRM, in SAS PROC MIXED's parameterisation.

Methods
-------
Each patient ``i`` has outcomes ``y_i`` at a subset of the ``m`` scheduled visits, with
``Var(y_i) = Sigma_i = S_i' Sigma(theta) S_i`` (``S_i`` picks the observed visits). This module
defines ``Sigma(theta)`` for the structures of SAS's ``REPEATED / TYPE=`` with ``theta`` exactly
as PROC MIXED prints it in "Covariance Parameter Estimates", so estimates can be compared with a
listing row by row, and gives the first and second derivatives ``dSigma/dtheta_a`` and
``d2Sigma/dtheta_a dtheta_b`` that the likelihood, Satterthwaite and Kenward-Roger code needs.

========  =========================================  =====================================
name      SAS                                        theta (in SAS's order)
========  =========================================  =====================================
us        TYPE=UN                                    UN(1,1), UN(2,1), UN(2,2), UN(3,1), ...
toep      TYPE=TOEP                                  TOEP(2) .. TOEP(m), Residual
toeph     TYPE=TOEPH                                 Var(1) .. Var(m), TOEPH(1) .. TOEPH(m-1)
ar1       TYPE=AR(1)                                 AR(1), Residual
ar1h      TYPE=ARH(1)                                Var(1) .. Var(m), ARH(1)
cs        TYPE=CS                                    CS, Residual  (Sigma = Residual*I + CS*J)
csh       TYPE=CSH                                   Var(1) .. Var(m), CSH
ad        (homogeneous ante-dependence, as mmrm)     Rho(1) .. Rho(m-1), Residual
adh       TYPE=ANTE(1)                               Var(1) .. Var(m), Rho(1) .. Rho(m-1)
========  =========================================  =====================================

Heterogeneous structures are ``Sigma_jk = sqrt(v_j v_k) C_jk(rho)``; homogeneous correlated ones
are ``Sigma = s2 C(rho)``; ``us``, ``toep`` and ``cs`` are linear in ``theta`` (zero second
derivatives, which is why SAS's ``ddfm=kr`` and ``kr(linear)`` agree for them). Correlations are
``rho^|j-k|`` (AR), ``rho`` off the diagonal (CS), ``rho_|j-k|`` (Toeplitz) and
``prod_{l=j}^{k-1} rho_l`` (ante-dependence).

References: SAS/STAT User's Guide, PROC MIXED, "REPEATED statement, TYPE= option" (Table of
covariance structures); Sabanes Bove et al., mmrm: Mixed Models for Repeated Measures (R package,
vignette "Covariance structures").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.errors import ConfigError

STRUCTURES = ("us", "toep", "toeph", "ar1", "ar1h", "cs", "csh", "ad", "adh")


@dataclass(frozen=True)
class CovarianceStructure:
    """A residual covariance structure over ``m`` ordered visits.

    Parameters
    ----------
    name : str
        One of ``STRUCTURES``.
    m : int
        Number of scheduled visits.
    """

    name: str
    m: int

    def __post_init__(self):
        if self.name not in STRUCTURES:
            raise ConfigError(f"covariance must be one of {', '.join(STRUCTURES)}; got {self.name!r}")
        if self.m < 1 or (self.m < 2 and self.name not in ("us", "cs", "toep")):
            raise ConfigError(f"covariance {self.name!r} needs at least 2 visits; got {self.m}")

    # -- layout ---------------------------------------------------------------------------
    @property
    def heterogeneous(self) -> bool:
        return self.name in ("toeph", "ar1h", "csh", "adh")

    @property
    def linear(self) -> bool:
        return self.name in ("us", "toep", "cs")

    @property
    def n_corr(self) -> int:
        return {"toeph": self.m - 1, "ar1": 1, "ar1h": 1, "csh": 1, "ad": self.m - 1,
                "adh": self.m - 1}.get(self.name, 0)

    @property
    def n_params(self) -> int:
        m = self.m
        if self.name == "us":
            return m * (m + 1) // 2
        if self.name == "toep":
            return m
        if self.name == "cs":
            return 2
        return (m if self.heterogeneous else 1) + self.n_corr

    def param_names(self) -> list[str]:
        """SAS's "Cov Parm" labels, in SAS's order."""
        m = self.m
        if self.name == "us":
            return [f"UN({i + 1},{j + 1})" for i in range(m) for j in range(i + 1)]
        if self.name == "toep":
            return [f"TOEP({lag + 1})" for lag in range(1, m)] + ["Residual"]
        if self.name == "cs":
            return ["CS", "Residual"]
        corr = {"toeph": [f"TOEPH({k})" for k in range(1, m)], "ar1": ["AR(1)"],
                "ar1h": ["ARH(1)"], "csh": ["CSH"], "ad": [f"Rho({k})" for k in range(1, m)],
                "adh": [f"Rho({k})" for k in range(1, m)]}[self.name]
        if self.heterogeneous:
            return [f"Var({j + 1})" for j in range(m)] + corr
        return corr + ["Residual"]

    def is_variance(self) -> np.ndarray:
        """Boolean mask: which parameters are on the variance scale (the rest are correlations)."""
        if self.linear:
            return np.ones(self.n_params, bool)
        names = self.param_names()
        return np.array([n.startswith("Var(") or n == "Residual" for n in names])

    # -- the correlation part ---------------------------------------------------------------
    def _corr(self, rho: np.ndarray, order: int):
        """C(rho) and, for order >= 1, dC/drho (q, m, m); order 2 adds d2C (q, q, m, m)."""
        m, q = self.m, len(rho)
        lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
        c = np.ones((m, m))
        dc = np.zeros((q, m, m))
        d2c = np.zeros((q, q, m, m))
        kind = {"ar1": "ar1", "ar1h": "ar1", "csh": "cs", "toeph": "toep", "ad": "ante",
                "adh": "ante"}[self.name]
        if kind == "ar1":
            r = rho[0]
            c = r ** lag
            dc[0] = np.where(lag >= 1, lag * r ** np.maximum(lag - 1, 0), 0.0)
            d2c[0, 0] = np.where(lag >= 2, lag * (lag - 1) * r ** np.maximum(lag - 2, 0), 0.0)
        elif kind == "cs":
            c = np.where(lag > 0, rho[0], 1.0)
            dc[0] = (lag > 0).astype(float)
        elif kind == "toep":
            for k in range(1, m):
                c = np.where(lag == k, rho[k - 1], c)
                dc[k - 1] = (lag == k).astype(float)
        elif kind == "ante":
            for j in range(m):
                for k in range(j + 1, m):
                    span = list(range(j, k))
                    c[j, k] = c[k, j] = np.prod(rho[span])
                    for a in span:
                        rest = [s for s in span if s != a]
                        dc[a, j, k] = dc[a, k, j] = np.prod(rho[rest])
                        for b in rest:
                            rest2 = [s for s in rest if s != b]
                            d2c[a, b, j, k] = d2c[a, b, k, j] = np.prod(rho[rest2])
        return c, dc, d2c

    # -- Sigma and its derivatives ------------------------------------------------------------
    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """The ``m x m`` covariance matrix at ``theta``."""
        return self.derivatives(theta, order=0)[0]

    def derivatives(self, theta: np.ndarray, order: int = 2):
        """``Sigma``, ``dSigma`` (k, m, m) and ``d2Sigma`` (k, k, m, m) at ``theta``.

        The derivatives are ``None`` above the requested ``order``.
        """
        theta = np.asarray(theta, float)
        m, k = self.m, self.n_params
        if self.linear:
            basis = self._linear_basis()
            sig = np.tensordot(theta, basis, axes=1)
            return sig, (basis if order >= 1 else None), (np.zeros((k, k, m, m)) if order >= 2 else None)
        q = self.n_corr
        if self.heterogeneous:
            v, rho = theta[:m], theta[m:]
        else:
            rho, v = theta[:q], np.full(m, theta[q])
        c, dc, d2c = self._corr(rho, order)
        s = np.sqrt(np.maximum(v, 0.0))
        ss = np.outer(s, s)
        sig = ss * c
        if order == 0:
            return sig, None, None
        d = np.zeros((k, m, m))
        d2 = np.zeros((k, k, m, m)) if order >= 2 else None
        cidx = np.arange(q) + (m if self.heterogeneous else 0)
        d[cidx] = ss * dc
        if order >= 2:
            d2[np.ix_(cidx, cidx)] = ss * d2c
        if self.heterogeneous:
            # d(s_j s_k)/dv_a = (e_ja + e_ka) s_j s_k / (2 v_a)
            eye = np.eye(m)
            e = (eye[:, None, :] + eye[None, :, :]) / 2.0  # e[j, k, a]
            dss = np.einsum("jka,jk->ajk", e, ss) / v[:, None, None]
            d[:m] = dss * c
            if order >= 2:
                # d2(s_j s_k)/dv_a dv_b = s_j s_k e_a (e_b - delta_ab) / (v_a v_b)
                d2ss = np.einsum("jka,jkb,jk->abjk", e, e, ss)
                d2ss -= np.einsum("jka,ab,jk->abjk", e, eye, ss)
                d2ss /= np.multiply.outer(v, v)[:, :, None, None]
                d2[:m, :m] = d2ss * c
                cross = np.einsum("ajk,qjk->aqjk", dss, dc)
                d2[np.ix_(np.arange(m), cidx)] = cross
                d2[np.ix_(cidx, np.arange(m))] = cross.transpose(1, 0, 2, 3)
        else:
            d[q] = c
            if order >= 2:
                d2[q, cidx] = dc
                d2[cidx, q] = dc
        return sig, d, d2

    def _linear_basis(self) -> np.ndarray:
        m = self.m
        lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
        if self.name == "us":
            basis = []
            for i in range(m):
                for j in range(i + 1):
                    b = np.zeros((m, m))
                    b[i, j] = b[j, i] = 1.0
                    basis.append(b)
            return np.array(basis)
        if self.name == "toep":
            return np.array([(lag == k).astype(float) for k in range(1, m)] + [np.eye(m)])
        return np.array([np.ones((m, m)), np.eye(m)])  # cs: CS * J + Residual * I

    # -- feasibility and starting values ------------------------------------------------------
    def feasible(self, theta: np.ndarray) -> bool:
        """True when ``theta`` gives a positive-definite ``Sigma`` and correlations in (-1, 1)."""
        theta = np.asarray(theta, float)
        if not np.all(np.isfinite(theta)):
            return False
        var = self.is_variance()
        if not self.linear:
            if np.any(theta[var] <= 0) or np.any(np.abs(theta[~var]) >= 1):
                return False
        try:
            np.linalg.cholesky(self.sigma(theta))
        except np.linalg.LinAlgError:
            return False
        return True

    def start(self, moment_sigma: np.ndarray) -> np.ndarray:
        """Starting ``theta`` from a moment estimate of ``Sigma`` (pairwise residual covariances)."""
        s0 = np.asarray(moment_sigma, float)
        m = self.m
        var = np.clip(np.diag(s0), 1e-8 * max(np.nanmax(np.diag(s0)), 1e-12), None)
        sd = np.sqrt(var)
        corr = np.clip(s0 / np.outer(sd, sd), -0.95, 0.95)
        lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
        lag_mean = np.array([corr[lag == k].mean() if k < m else 0.0 for k in range(1, max(m, 2))])
        if self.name == "us":
            w, v = np.linalg.eigh((s0 + s0.T) / 2)
            s0 = (v * np.maximum(w, 1e-3 * w.max())) @ v.T
            return np.array([s0[i, j] for i in range(m) for j in range(i + 1)])
        if self.name == "toep":
            cov = [np.mean(s0[lag == k]) for k in range(1, m)]
            theta = np.array(cov + [var.mean()])
        elif self.name == "cs":
            off = s0[lag > 0].mean() if m > 1 else 0.0
            theta = np.array([off, max(var.mean() - off, 0.1 * var.mean())])
        else:
            rho = {"ar1": lag_mean[:1], "ar1h": lag_mean[:1],
                   "csh": np.array([corr[lag > 0].mean()]), "toeph": lag_mean[: m - 1],
                   "ad": np.diag(corr, 1), "adh": np.diag(corr, 1)}[self.name]
            rho = np.clip(rho, -0.9, 0.9)
            theta = np.concatenate([var, rho]) if self.heterogeneous else np.append(rho, var.mean())
        shrink = 1.0
        while not self.feasible(theta) and shrink > 1e-3:  # pull correlations towards 0
            shrink /= 2
            theta = theta.copy()
            mask = ~self.is_variance() if not self.linear else self._offdiag_mask()
            theta[mask] *= 0.5
        return theta

    def _offdiag_mask(self) -> np.ndarray:
        names = self.param_names()
        return np.array([n not in ("Residual",) and not (n.startswith("UN(") and n[3] == n[5])
                         for n in names])

    def scale(self, theta: np.ndarray) -> np.ndarray:
        """Typical size of each parameter (variance scale or 1 for correlations) for the optimiser."""
        var = self.is_variance()
        typical = np.mean(np.abs(np.diag(self.sigma(theta)))) or 1.0
        return np.where(var, typical, 1.0)
