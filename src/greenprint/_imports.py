"""One way to import an optional dependency: :func:`require`, naming what to install.

greenprint's core needs numpy, SQLAlchemy, psutil, click and nvidia-ml-py; the rest is optional
(extras in ``pyproject.toml``). Code that needs an optional module imports it where it is used,
through :func:`require`, so a missing module always gives the same
:class:`~greenprint.MissingDependencyError` (an ``ImportError``): what needs it, the package, and
the command that installs it (``pip install 'greenprint[report]'``), as optuna's ``try_import``.

Example:
    >>> from greenprint._imports import require
    >>> require("json", extra=None, purpose="this example").__name__
    'json'
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from greenprint._exceptions import MissingDependencyError

__all__ = ["EXTRAS", "ensure", "is_available", "require"]

#: The extras of ``pyproject.toml`` and what they bring.
EXTRAS = {
    "torch": "PyTorch, for counting FPO",
    "report": "matplotlib and rich, for plots and progress",
    "postgres": "psycopg, for a PostgreSQL ledger",
    "demo": "scikit-learn, rich and matplotlib, for greenprint demo",
    "optuna": "Optuna, for greenprint.integrations.optuna",
    "sklearn": "scikit-learn, for greenprint.integrations.sklearn",
    "notebook": "IPython, for the %greenprint magics",
    "lightning": "Lightning, for greenprint.integrations.lightning",
    "transformers": "transformers and accelerate, for greenprint.integrations.transformers",
    "mlflow": "mlflow-skinny and alembic, for greenprint.integrations.mlflow",
    "wandb": "wandb, for greenprint.integrations.wandb",
    "tensorboard": "TensorBoard, for greenprint.integrations.tensorboard",
    "ray": "Ray Tune, for greenprint.integrations.ray",
}


def require(
    module: str, *, extra: str | None, purpose: str, package: str | None = None
) -> ModuleType:
    """Import ``module``, or raise the error that says how to install it.

    Args:
        module: the module to import (``"matplotlib.figure"``, ``"psycopg"``).
        extra: the greenprint extra that installs it (``"report"``), or ``None`` when it is a
            dependency of greenprint itself (the error then names the package).
        purpose: what needs it, for the message (``"plots in reports"``).
        package: the package to install, when it is not the module's top-level name
            (``"scikit-learn"`` for ``sklearn``).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the module (or one it needs) cannot be imported; the message
            names ``pip install 'greenprint[EXTRA]'`` and the original error is chained.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        name = package or module.partition(".")[0]
        raise MissingDependencyError(name, extra, purpose) from e


def ensure(module: str, *, extra: str | None, purpose: str, package: str | None = None) -> None:
    """Check that ``module`` can be imported, without importing it (slow imports stay lazy).

    Raises:
        MissingDependencyError: as :func:`require` would.
    """
    if not is_available(module):
        raise MissingDependencyError(package or module.partition(".")[0], extra, purpose)


def is_available(module: str) -> bool:
    """Whether ``module`` can be found, without importing it.

    A ``None`` entry in ``sys.modules`` counts as missing, as it does for ``import``.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
