"""greenprint: the price tag of every machine-learning result.

Energy (kWh), carbon (kg CO2-eq), floating-point operations (FPO), wall time and parameters, for
one run and for the whole study that led to it. Heavy modules load on first use, so
``import greenprint`` stays fast and needs no torch.

Example:
    >>> import greenprint as gp
    >>> with gp.track("baseline", study="demo", ledger="greenprint.db") as run:  # doctest: +SKIP
    ...     run.log(accuracy=0.9)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenprint import _lazy, _public
from greenprint._exceptions import (
    AnalysisError,
    BudgetExceeded,
    ConfigError,
    FPOError,
    FPOInputError,
    GreenprintError,
    IntensityCSVError,
    InvalidIntensityError,
    InvalidPUEError,
    LedgerError,
    LedgerPathError,
    MergeConflictError,
    MeterError,
    MissingDependencyError,
    NotALedgerError,
    ReportError,
    SchemaVersionError,
    UnknownOpError,
    UnknownRegionError,
    UnknownRunError,
    UnknownStudyError,
)
from greenprint._provenance import Provenance
from greenprint._records import MetricPoint, PowerSample, RunRecord
from greenprint._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._budget import Budget
    from greenprint.fpo import FPOCounter, FPOResult, count_fpo, training_fpo
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run, current_run, track

# name -> module that defines it; imported on first attribute access (PEP 562): a budget
# brings logging and validation, the others the tracker, the ledger or torch
_LAZY = {
    "Budget": "greenprint._budget",
    "track": "greenprint.tracking",
    "current_run": "greenprint.tracking",
    "Run": "greenprint.tracking",
    "Ledger": "greenprint.ledger",
    "count_fpo": "greenprint.fpo",
    "training_fpo": "greenprint.fpo",
    "FPOCounter": "greenprint.fpo",
    "FPOResult": "greenprint.fpo",
}

__all__ = [
    "AnalysisError",
    "Budget",
    "BudgetExceeded",
    "ConfigError",
    "FPOCounter",
    "FPOError",
    "FPOInputError",
    "FPOResult",
    "GreenprintError",
    "IntensityCSVError",
    "InvalidIntensityError",
    "InvalidPUEError",
    "Ledger",
    "LedgerError",
    "LedgerPathError",
    "MergeConflictError",
    "MeterError",
    "MetricPoint",
    "MissingDependencyError",
    "NotALedgerError",
    "PowerSample",
    "Provenance",
    "ReportError",
    "Run",
    "RunRecord",
    "SchemaVersionError",
    "UnknownOpError",
    "UnknownRegionError",
    "UnknownRunError",
    "UnknownStudyError",
    "__version__",
    "count_fpo",
    "current_run",
    "track",
    "training_fpo",
]

_public.publish(__name__, globals())


__getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY)
