"""Write pytest's assertion-rewritten bytecode of the test modules once, for xdist's workers.

pytest rewrites the ``assert`` statements of every test module it imports and caches the result
as a ``.pyc`` of its own (``__pycache__/<name>.<tag>-pytest-<version>.pyc``, hash-checked against
the source), which it reads even when it may not write one. Under ``PYTHONDONTWRITEBYTECODE``
(or ``-B``) it writes none, so each xdist worker parsed, rewrote and compiled all the suite's
test modules again at collection: ~10 s of CPU per worker, every run. Without the variable, on a
fresh clone, the workers all rewrite every module at the same time before one of them has
written it. The controller, which collects nothing, writes them once here before the workers
start, split over the cores, and the workers read them as pytest reads its own cache.

This reaches into ``_pytest.assertion.rewrite`` (no public API writes the cache): if a pytest
upgrade changes it, nothing is written and the workers rewrite the modules as before; a file
pytest would not read back is not kept.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest


def _candidates(config: pytest.Config) -> list[Path]:
    """The test modules and conftests under the run's arguments (files and folders)."""
    patterns = [*config.getini("python_files"), "conftest.py"]
    found: set[Path] = set()
    base = config.invocation_params.dir
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path.is_file() and path.suffix == ".py":
            found.add(path)
        elif path.is_dir():
            for file in path.rglob("*.py"):
                if any(fnmatch.fnmatch(file.name, pattern) for pattern in patterns):
                    found.add(file)
    return sorted(found)


def _rewrite(files: list[Path], config: pytest.Config) -> None:
    from _pytest.assertion.rewrite import (
        PYC_TAIL,
        _read_pyc,
        _rewrite_test,
        _write_pyc_fp,
        get_cache_dir,
    )

    for file in files:
        pyc = get_cache_dir(file) / (file.name[:-3] + PYC_TAIL)
        if _read_pyc(file, pyc) is not None:
            continue  # up to date
        try:
            source_hash, code = _rewrite_test(file, config)
        except SyntaxError:
            continue  # the worker reports it
        pyc.parent.mkdir(exist_ok=True)
        partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
        with open(partial, "wb") as out:
            _write_pyc_fp(out, source_hash, code)
        os.replace(partial, pyc)  # atomic, as pytest writes it
        if _read_pyc(file, pyc) is None:  # not what this pytest reads: keep nothing
            pyc.unlink()
            raise RuntimeError("pytest does not read the rewritten pyc back")


def write_rewritten_pycs(config: pytest.Config, processes: int) -> None:
    """Write the rewritten ``.pyc`` of every test module the workers will collect.

    Args:
        config: The controller's pytest configuration (its arguments and ``python_files``).
        processes: How many processes share the work (forked; one where ``fork`` is missing).
    """
    try:
        files = _candidates(config)
        if not files:
            return
        processes = max(1, min(processes, len(files)))
        if not hasattr(os, "fork"):
            processes = 1
        children = []
        for index in range(1, processes):
            pid = os.fork()
            if pid == 0:  # a child: its share, then out without pytest's exit handlers
                status = 0
                try:
                    _rewrite(files[index::processes], config)
                except BaseException:
                    status = 1
                finally:
                    os._exit(status)
            children.append(pid)
        try:
            _rewrite(files[::processes], config)
        finally:
            for pid in children:
                os.waitpid(pid, 0)
    except Exception:
        return  # an optimisation only: the workers rewrite the modules themselves
