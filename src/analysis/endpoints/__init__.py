"""Endpoints: the clinic questions, each answered with the engines of ``analysis.models``.

Owns pain over time, knee-pain episode rates, strength change, responders and foot-posture
moderation, clinic benchmarking and the descriptive tables (flow, baseline, missingness). Each
endpoint turns the validated visit table and its config section into a fitted model with tidy
tables. May import ``analysis.models``, ``analysis.intake`` and the foundations (``config``,
``errors``, ``results``); must not import audit, report, run or studies.
"""
