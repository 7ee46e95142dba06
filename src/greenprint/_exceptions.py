"""The exceptions greenprint raises.

Every error greenprint raises on purpose derives from :class:`GreenprintError`, so a caller can
catch one class. The CLI turns any ``GreenprintError`` into one line on stderr and exit status 2.

The tree::

    GreenprintError
    ├── ConfigError (also ValueError)           bad option, argument or config value
    │   ├── InvalidPUEError                     PUE <= 0, NaN, infinite or absurd
    │   ├── InvalidIntensityError               intensity < 0, NaN, infinite or absurd
    │   ├── UnknownRegionError                  region code not in the shipped tables
    │   └── IntensityCSVError                   malformed hourly intensity CSV (names the line)
    ├── LedgerError
    │   ├── LedgerPathError                     a directory, unwritable, missing parent
    │   ├── NotALedgerError                     a file or database that is not a greenprint ledger
    │   ├── SchemaVersionError                  the ledger is newer than this code, or needs upgrade
    │   ├── MergeConflictError                  a run differs between ledgers being merged
    │   ├── UnknownRunError (also KeyError)     no run with that id
    │   └── UnknownStudyError (also KeyError)   no study with that name
    ├── MeterError                              a meter could not be read (tracking catches it and
    │                                           degrades to an estimate; it never reaches user code)
    ├── FPOError
    │   ├── UnknownOpError                      strict mode met an op with no rule
    │   └── FPOInputError (also ValueError)     bad shape, dtype or factory for the counter
    ├── AnalysisError (also ValueError)         e.g. a study with no metric to rank
    ├── ReportError                             empty study, unwritable output, unknown format
    ├── BudgetExceeded                          a budget with on_exceed="stop" was crossed (raised
    │                                           at the next run.log()/step(); the run ends
    │                                           interrupted)
    └── MissingDependencyError (also ImportError)  an optional extra is not installed
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnalysisError",
    "BudgetExceeded",
    "ConfigError",
    "FPOError",
    "FPOInputError",
    "GreenprintError",
    "IntensityCSVError",
    "InvalidIntensityError",
    "InvalidPUEError",
    "LedgerError",
    "LedgerPathError",
    "MergeConflictError",
    "MeterError",
    "MissingDependencyError",
    "NotALedgerError",
    "ReportError",
    "SchemaVersionError",
    "UnknownOpError",
    "UnknownRegionError",
    "UnknownRunError",
    "UnknownStudyError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Unpickle an exception whose ``__init__`` takes keyword arguments."""
    return cls(*args, **kwargs)


class GreenprintError(Exception):
    """Root of every error greenprint raises on purpose."""

    def __str__(self) -> str:
        # KeyError subclasses would otherwise print with quotes around the message.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(GreenprintError, ValueError):
    """A bad option, argument or configuration value."""


class InvalidPUEError(ConfigError):
    """A power usage effectiveness that is not a finite number in [1.0, 3.0]."""


class InvalidIntensityError(ConfigError):
    """A grid carbon intensity that is negative, NaN, infinite or absurd (g CO2-eq/kWh)."""


class UnknownRegionError(ConfigError):
    """A region code that no shipped table knows.

    Attributes:
        region: the code the user gave.
        suggestions: the nearest known codes, best first.
    """

    def __init__(self, message: str, *, region: str = "", suggestions: tuple[str, ...] = ()):
        super().__init__(message)
        self.region = region
        self.suggestions = suggestions

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (
            type(self),
            self.args,
            {"region": self.region, "suggestions": self.suggestions},
        )


class IntensityCSVError(ConfigError):
    """A malformed hourly intensity CSV; the message names the file and line."""


class LedgerError(GreenprintError):
    """Something went wrong with a ledger."""


class LedgerPathError(LedgerError):
    """The ledger path is a directory, cannot be written, or its parent does not exist."""


class NotALedgerError(LedgerError):
    """The file or database exists but is not a greenprint ledger; it is left untouched."""


class SchemaVersionError(LedgerError):
    """The ledger's schema is newer than this code (upgrade greenprint) or cannot be migrated."""


class MergeConflictError(LedgerError):
    """A run differs between ledgers being merged (not as a later state of it); nothing written.

    Attributes:
        run_ids: the ids of the conflicting runs.
    """

    def __init__(self, message: str, *, run_ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.run_ids = run_ids

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, {"run_ids": self.run_ids})


class UnknownRunError(LedgerError, KeyError):
    """No run with that id (or id prefix) in the ledger."""


class UnknownStudyError(LedgerError, KeyError):
    """No study with that name in the ledger."""


class MeterError(GreenprintError):
    """A meter could not be read. Tracking catches it and falls back to an estimate."""


class FPOError(GreenprintError):
    """An error from the FPO counter."""


class UnknownOpError(FPOError):
    """``strict=True`` and an op ran that has no FPO rule."""


class FPOInputError(FPOError, ValueError):
    """A bad input shape, dtype or model factory given to the FPO counter."""


class AnalysisError(GreenprintError, ValueError):
    """The analysis cannot be done on this input (for example no metric to rank runs by)."""


class ReportError(GreenprintError):
    """A report cannot be made: empty study, unwritable output directory, unknown format."""


class BudgetExceeded(GreenprintError):
    """A budget with ``on_exceed="stop"`` was crossed; the run ends ``interrupted``.

    Raised in the user's code at the next ``run.log()``, ``run.step()``, ``run.progress()`` or
    ``run.add_fpo()`` after the limit was crossed, once (see :class:`greenprint.Budget`).

    Attributes:
        limit: the limit crossed (``"budget_kwh"``, ``"study budget_kg"``...).
        budget: its value, in its unit (kWh, kg CO2-eq, FPO or s).
        spent: what had been spent when it was noticed, in the same unit.
        per: ``"run"`` or ``"study"``.
        run_id: the run that noticed.
        study: the run's study.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: str = "",
        budget: float = 0.0,
        spent: float = 0.0,
        per: str = "run",
        run_id: str = "",
        study: str = "",
    ):
        super().__init__(message)
        self.limit = limit
        self.budget = budget
        self.spent = spent
        self.per = per
        self.run_id = run_id
        self.study = study

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (
            type(self),
            self.args,
            {
                "limit": self.limit,
                "budget": self.budget,
                "spent": self.spent,
                "per": self.per,
                "run_id": self.run_id,
                "study": self.study,
            },
        )


class MissingDependencyError(GreenprintError, ImportError):
    """An optional dependency is missing; the message names the extra to install.

    Raised by :func:`greenprint._imports.require`.

    Attributes:
        package: the package that is missing (``"matplotlib"``).
        extra: the greenprint extra that installs it (``"report"``), or ``None`` for a
            dependency of greenprint itself.
        feature: what needs it (``"plots in reports"``).
        install: the command that installs it (``"pip install 'greenprint[report]'"``).
    """

    def __init__(self, package: str, extra: str | None, feature: str):
        install = f"pip install 'greenprint[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs {package}, which is not installed: {install}")
        self.package = package
        self.extra = extra
        self.feature = feature
        self.install = install

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str | None, str]]:
        return type(self), (self.package, self.extra, self.feature)
