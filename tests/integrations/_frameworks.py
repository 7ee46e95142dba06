"""Check a framework an integration test needs: skip without it, but fail under ``CI=true``.

``make test`` installs every framework (they are in the ``dev`` extra), so in CI a missing one
is a broken environment, not a reason to skip (as ``require_component`` in tests/conftest.py).

:func:`need_installed` only looks the framework up (``importlib.util.find_spec``), it does not
import it: every pytest-xdist worker collects every test module, and importing the frameworks
there cost each worker about 20 s of CPU (Lightning alone 6-9 s) whether or not it ran their
tests. A test module that uses it imports its framework in a fixture or in its tests.
:func:`need` imports the framework (for cheap ones, Optuna: 0.2 s).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def installed(module: str) -> bool:
    """Whether ``module`` (dotted names too) can be imported, without importing any of it.

    ``find_spec("a.b")`` would import ``a``: a submodule is looked up in its parent's folders.
    """
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    for name in rest:
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
    return spec is not None


def _missing(module: str, extra: str, error: ImportError | None = None) -> None:
    reason = f"{module} is not installed (pip install 'greenprint[{extra}]')"
    if IN_CI:
        detail = f": {error}" if error is not None else ""
        pytest.fail(f"required component missing under CI=true: {reason}{detail}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_installed(module: str, extra: str) -> None:
    """Skip a whole test module without ``module`` (fail under ``CI=true``); imports nothing."""
    if not installed(module):
        _missing(module, extra)


def need(module: str, extra: str) -> ModuleType:
    """Import ``module`` for a whole test module, or skip it (fail under ``CI=true``)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        _missing(module, extra, e)
        raise  # not reached: skip and fail raise


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside, as it was after (tiny models: the pool's spinning threads
    cost more CPU than they save; subprocesses get ``OMP_NUM_THREADS=1``, as torchrun sets)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """The objects alive on entry (the imported frameworks' modules, classes and caches) out of
    the garbage collector's reach inside, as they were after (:func:`gc.freeze`, as the fork
    servers of :mod:`_docs_fork` do). The Hugging Face Trainer runs ``gc.collect()`` at each
    ``train()`` and hyperparameter-search trial (accelerate's ``free_memory``/``release_memory``),
    each walking every object of the process: about 0.2 s of CPU with torch, transformers and
    optuna loaded (test_transformers_search: 40 full collections, 7.3 s of its 13 s of CPU).
    Objects made inside are collected as ever. Objects frozen before entry (by a caller) stay
    frozen after: :func:`gc.unfreeze` releases every frozen object, so it is called only when
    nothing was frozen on entry (else this leaves its own frozen too: memory, not behaviour)."""
    import gc

    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if frozen_before == 0:
            gc.unfreeze()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run NumPy's and SciPy's BLAS and scikit-learn's OpenMP on one thread inside (call it once
    they are imported). Small fits: the pools' spinning threads cost more CPU than they save
    (test_sklearn 15.1 -> 10.3 s); joblib's worker processes get one thread each anyway."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
