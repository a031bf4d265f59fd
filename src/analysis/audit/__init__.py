"""Audit: claims files in, verdicts out.

Owns the claims file (parsing and checking), the estimand each claim is compiled to (the number in
a fitted endpoint that answers it), and the deterministic verdict rules (supported, overstated,
inconclusive, contradicted, not testable; Holm adjustment, MDE, patients needed). May import
``analysis.endpoints``, ``analysis.models``, ``analysis.intake`` and the foundations; must not
import report, run or studies.
"""
