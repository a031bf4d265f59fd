"""Report: what each notebook section computes, writes and shows.

Owns the run context a notebook opens (``context``: config, validated visits, the run folder's
tables, figures and results fragments), one module per notebook section (``sections``), disclosure
control of every reader-facing table, wording rules, figures, and rendering executed notebooks and
the dashboard to HTML (``html``, ``templates``). May import ``analysis.audit``,
``analysis.endpoints``, ``analysis.models``, ``analysis.intake`` and the foundations; must not
import run or studies. The context lives here, not in ``run``, so that ``run`` depends on
``report`` and never the other way.
"""
