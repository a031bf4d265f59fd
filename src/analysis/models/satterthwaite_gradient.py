r"""Satterthwaite df for the pls engine from analytic derivatives (lmerTest's df, one evaluation).

Methods
-------
lmerTest (Kuznetsova et al. 2017) takes :math:`H`, the Hessian of the deviance in
:math:`\phi = (\theta, \sigma)`, and :math:`\partial C/\partial\phi` (:math:`C = \sigma^2 G_{xx}^{-1}`
= Var(:math:`\hat\beta`)) by numDeriv's Richardson-extrapolated central differences of the deviance
and of :math:`C`; :class:`~analysis.models.satterthwaite.Satterthwaite` does the same (about 160
deviance evaluations for three :math:`\theta`). Here both are **analytic**
(:func:`analysis.models.pls_hessian.vp_hessian`: second derivatives of the REML/ML deviance from the
batched per-patient blocks of one full evaluation, which the estimates' evaluation at the optimum
already made), so the df cost no evaluation of the criterion beyond that one.

``analytic=False`` keeps the earlier recipe as a cross-check: the :math:`\theta` columns of
:math:`H` and of :math:`\partial C/\partial\phi` are central differences of the analytic gradient
(:meth:`~analysis.models.pls_deviance.PlsDeviance.vp_gradient`) and of :math:`C` at the same
points, step :math:`3\cdot10^{-5}|\theta_k|` (2 evaluations per free :math:`\theta`; ``LEVELS`` > 1
extrapolates as numDeriv does), with the exact :math:`\sigma` column
:math:`\partial^2 f/\partial\theta\,\partial\sigma = -2\sigma^{-3}\,\partial r^2/\partial\theta`,
:math:`\partial^2 f/\partial\sigma^2 = 6r^2/\sigma^4 - 2\nu/\sigma^2`,
:math:`\partial C/\partial\sigma = 2C/\sigma`.

:math:`H` is symmetrised. Boundary :math:`\theta` (a diagonal entry at 0) are held fixed, as in
:class:`~analysis.models.satterthwaite.Satterthwaite`. The analytic Hessian agrees with
Richardson-extrapolated differences of the analytic gradient to ~1e-10 relative
(tests/models/test_pls_hessian.py); numDeriv's second differences of a deviance of ~1e5 carry
round-off of ~1e-7 relative (1e-5 on the demo's data), so these df are the more accurate ones
(tests/models/test_satterthwaite_gradient.py).

References: Kuznetsova A, Brockhoff PB, Christensen RHB (2017) J Stat Softw 82(13);
Gilbert P, Varadhan R (2019) numDeriv, R package 2016.8-1.1.
"""

from __future__ import annotations

import numpy as np

from analysis.models.pls_deviance import _single_threaded
from analysis.models.pls_hessian import vp_hessian
from analysis.models.satterthwaite import Satterthwaite, _richardson, _steps

#: First relative step of the differences of the gradient, and the number of halvings + 1.
STEP, LEVELS = 3e-5, 1


class GradientSatterthwaite(Satterthwaite):
    """:class:`~analysis.models.satterthwaite.Satterthwaite` with ``hessian`` and ``jac`` analytic
    (``analytic=False``: differences of the analytic gradient) for a
    :class:`~analysis.models.pls_deviance.PlsDeviance` (module docstring)."""

    @_single_threaded  # its (p+1) x m products too: with BLAS threads on 2 busy cores one took 0.7 s
    def __init__(self, dev, theta, sigma, analytic: bool = True):
        theta = np.asarray(theta, float)
        self.free = np.append(~(dev.on_diagonal & (np.abs(theta) <= 1e-10)), True)
        full = np.append(theta, sigma)
        idx = np.flatnonzero(self.free)
        if analytic:
            # the estimates' full evaluation at the optimum is reused when it was the last one
            pc = dev._profile(theta, full=True, reuse=True)
            H, jac = vp_hessian(dev, theta, sigma, pc)
            self._finish(dev, full, H[np.ix_(idx, idx)], jac[..., idx])
            return
        k, p = len(idx), dev.p
        h0 = _steps(full, STEP)
        H, jac = np.empty((k, k)), np.empty((p, p, k))
        # the centre first: the estimates' full evaluation at the optimum is reused, and its pieces
        # (work arrays) are used before the differences overwrite them
        g, vcov, pc = dev.vp_gradient(full, pieces=True, reuse=True)
        dr2 = (g[:-1] - dev._gradient(theta, pc, 0.0)) * sigma ** 2    # d r^2 / d theta
        r2 = pc["r2"]
        for col, i in enumerate(idx[:-1]):  # the theta columns (sigma is last and always free)
            grads, covs = [], []
            for level in range(LEVELS):
                e = np.zeros_like(full)
                e[i] = h0[i] / 2.0 ** level
                g_plus, c_plus = dev.vp_gradient(full + e)
                g_minus, c_minus = dev.vp_gradient(full - e)
                grads.append((g_plus - g_minus)[idx] / (2 * e[i]))
                covs.append((c_plus - c_minus) / (2 * e[i]))
            H[:, col] = _richardson(grads)
            jac[..., col] = _richardson(covs)
        nu = (dev.n - dev.p) if dev.reml else dev.n
        H[:-1, -1] = -2.0 * dr2[idx[:-1]] / sigma ** 3
        H[-1, -1] = 6.0 * r2 / sigma ** 4 - 2.0 * nu / sigma ** 2
        jac[..., -1] = 2.0 * vcov / sigma
        self._finish(dev, full, H, jac)

    def _finish(self, dev, full, H, jac):
        self.hessian = (H + H.T) / 2
        eig = np.linalg.eigvalsh(self.hessian)
        self.positive_definite = bool(np.all(eig > 0))
        self.A = 2.0 * (np.linalg.inv(self.hessian) if self.positive_definite
                        else np.linalg.pinv(self.hessian))
        self.vcov = dev.covbeta(full)
        self.jac = jac
