"""``greenprint demo``: a complete small Green AI study on bundled data, tracked and reported.

:func:`run_demo` trains baselines, a random search (with pruned trials) and a learning curve on
scikit-learn's digits, records every run in a fresh ledger and writes the study's report. It
needs the ``torch`` and ``demo`` extras; they are imported only when it runs.
"""

from __future__ import annotations

from greenprint import _public
from greenprint.demo._study import DEFAULT_OUT, DEFAULT_STUDY, DemoResult, run_demo

__all__ = ["DEFAULT_OUT", "DEFAULT_STUDY", "DemoResult", "run_demo"]

_public.publish(__name__, globals())
