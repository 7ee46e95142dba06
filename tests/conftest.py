"""Shared fixtures: the network guard, CI strictness, and helpers for real components."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GUARD_DIR = Path(__file__).parent / "_guard"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# one log for the session: pytest-xdist's workers inherit the controller's, whose session end
# reads it (a worker's failed exit status does not reach the controller)
_inherited_log = os.environ.get("GREENPRINT_NETWORK_GUARD_LOG")
_own_guard_dir = not (os.environ.get("PYTEST_XDIST_WORKER") and _inherited_log)
if not _own_guard_dir:
    _guard_log = Path(_inherited_log)
else:
    _guard_log = Path(tempfile.mkdtemp(prefix="gp-guard-")) / "violations.log"
os.environ["GREENPRINT_NETWORK_GUARD"] = "1"
os.environ["GREENPRINT_NETWORK_GUARD_LOG"] = str(_guard_log)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
)
sys.path.insert(0, str(GUARD_DIR))
_theirs = sys.modules.get("sitecustomize")
if _theirs is not None and Path(getattr(_theirs, "__file__", None) or ".").parent != GUARD_DIR:
    # a distribution's own, imported at startup (Debian's Python runs
    # /usr/lib/python3.X/sitecustomize.py): it has run; the name is ours from here on, else
    # `import sitecustomize` below returned it and the guard was never installed
    del sys.modules["sitecustomize"]
import sitecustomize as _network_guard  # noqa: E402  (ours, from tests/_guard)

_network_guard.install()

# Ray (2.60) starts a local cluster with token authentication: ray.init writes a token to
# ~/.ray/auth_token unless its process already holds one (cached for the process's life), and the
# cluster's GCS server reads it from its own HOME. Two in-process clusters of one xdist worker
# under different HOMEs (each Ray test keeps Ray's files in its own) left the second GCS without
# a token: it aborted ("couldn't find an authentication token"), and ray.init timed out after
# 30 s. One token in the environment serves every cluster, in-process and in the scripts' alike.
os.environ.setdefault("RAY_AUTH_TOKEN", "0123456789abcdef" * 4)
# Work no Ray test reads, left out of every cluster (in-process and the scripts'): Tune's
# default loggers (CSV, JSON, TensorBoard: tensorboardX imports torch, 1.9 s of each driver's
# CPU) and the raylet's prestarted workers (two idle processes, ~0.7 s of CPU each, never used:
# Tune's trial actors carry a runtime environment, so each trial asks for a worker of its own)
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_enable_worker_prestart", "0")
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
# Ray starts its workers (every trial's actor) at niceness 15: beside the other xdist workers'
# processes (niceness 0) on busy cores they get a few percent of a core, and an actor that needs
# ~3 s of CPU to start took 27-62 s (the ASHA test alone beside two CPU burners: 237 s, 59 s at 0)
os.environ.setdefault("RAY_worker_niceness", "0")

# pytest-xdist's workers ignore SIGINT, and so does a shell's background job (``make test &``,
# ``nohup``); an ignored signal stays ignored in the processes they start: the tests of Ctrl-C
# reaching a command need it delivered (four of outside shapes 9 failed in a background run)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers share the cores: torch's (OpenMP's, OpenBLAS's) default of one thread per
    # core in every worker and in every process a test starts oversubscribes them, and the
    # threads spin waiting for each other (``pytest -n 2 --dist loadfile tests/greener
    # tests/fpo/test_fpo_zoo.py tests/integrations/test_transformers.py tests/test_jobs.py`` on
    # 2 busy cores: 170 s wall, 95 s CPU with a thread per core; 84 s, 46 s with one).
    # Each worker's share of the cores, unless the caller chose; the processes started inherit
    # it. Before torch is imported: no test module has run yet.
    _share = (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))


def _compile_greenprint() -> None:
    """Write the bytecode of greenprint's modules once, when Python is told not to.

    Under ``PYTHONDONTWRITEBYTECODE`` (or ``-B``) no process writes a ``.pyc``, so each of the
    suite's hundreds of ``greenprint`` and ``python`` subprocesses compiled again every module
    of the package it imported (about 70 for ``greenprint report``: 0.1-0.5 s of CPU each time,
    on a fresh clone). Written once here, beside the sources (``__pycache__``, ignored by git,
    where any import would write them without the variable), they are read by every process;
    up-to-date files are kept (a few ms). The network guard too: every one of those processes
    loads it (compiling it cost each ~2 ms of CPU). Nothing else is compiled: installed packages
    came with their bytecode.
    """
    if not sys.flags.dont_write_bytecode or os.environ.get("PYTEST_XDIST_WORKER"):
        return  # Python writes it as it imports; or the controller has written it
    import compileall
    import importlib.util

    compileall.compile_dir(GUARD_DIR, quiet=2)
    spec = importlib.util.find_spec("greenprint")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=2)


_compile_greenprint()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before xdist starts its workers: write the test modules' rewritten bytecode once.

    Each worker otherwise rewrote the asserts of every test module it collected (under
    ``PYTHONDONTWRITEBYTECODE`` on every run: ~10 s of CPU each); see :mod:`_rewritten_pycs`.
    """
    workers = session.config.getoption("numprocesses", None)
    if session.config.pluginmanager.has_plugin("dsession") and workers:
        from _rewritten_pycs import write_rewritten_pycs

        write_rewritten_pycs(session.config, processes=min(workers, os.cpu_count() or 1))


#: Seconds each of the suite's longest files took in its worker, in a whole-suite run
#: (``pytest -n 3 --dist loadfile --durations=0``, the sum of each file's setup, call and
#: teardown times; 076af40, 2026-12-03 06:20 UTC, this VM's 2 cores and nothing else running:
#: relative figures). Under ``--dist loadfile`` the files start longest first (below), so no
#: long file starts last while the other workers sit idle. A file missing here, or an estimate
#: out of date, changes only the order, never what runs. Files made cheaper since (session 19)
#: are scaled by the ratio of their wall time alone after and before the change, measured on
#: one VM one after the other, so that they stay comparable with the others: the docs'
#: examples 254.6 -> 212.9 s, the Ray tests 74 -> 65 s (two runs each), new user s18 56.6 ->
#: 35.0 s, outside shapes 2 less its PostgreSQL test's 2.6 s. Session 20: outside shapes 9 by
#: its CPU alone after/before its Lightning scripts shared a fork server (63.2 -> 50.3 and
#: 78.9 -> 70.1 s, alternated; its wall time alone moved with the VM's load). Session 21: the
#: files whose properties draw 100 examples now, by their CPU alone after/before (threads share
#: 0.84, cost rules 0.6, concurrent 0.4, decoded columns 0.65, json rows 0.84). Session 29: the
#: Ray scripts of review s16, outside shapes 2, 4 and 7, outside reports, integrations s24 and
#: s25 share one driver and cluster in ``test_ray_scripts.py``: those files less their Ray
#: tests' time in the run of 567cb1e, the new file their sum by its CPU alone after/before
#: (156.5 s x 74.9/146.8); Lightning's and the Trainer's tests by their CPU alone after/before
#: (fit in the test's process, a fork server: 47.8 -> 40.3 s, 16.5 -> 8.9 s); the carry-overs'
#: file by its tests' times alone (a Lightning DDP group 28 s, scikit-learn 7 s). Session 30: that
#: DDP group moved to ``test_lightning_refit_ddp_s30.py``, one launch with the refit study's.
#: Session 37: the files of sessions 22-36 that were missing (ordered by their number of tests,
#: files of 1-5 tests of 10-45 s started among the last: ``test_ray_merge_while_running_s34.py``
#: 354th of 371), by the sum of their tests' times among the 150 longest of a whole-suite run
#: (4514b47 + helpers' work, 2026-12-05 13:15 UTC, 795 s: a VM about 1.5x faster than the one
#: of the figures above, so they start after the old files of the same time), less what moved
#: out of them (s26's Lightning DDP lr_find, 18 s; pinned s34's Ray search, 21 s) and plus what
#: moved in (the Ray scripts' Hugging Face search, 15 s; the refit DDP launch's lr_find, 5 s).
#: Session 42: every file whose tests' times sum to 7 s or more in a new clone's whole-suite run
#: (8c54e384, 2026-12-06 05:12 UTC, quiet, 703 s; sessions 37-41's figures had gone stale as
#: their files were cut by a third or more, and 41's new files were missing). Session 49: its
#: given-metric property file, 16-18 s alone in a slower hour, scaled by that hour's JSON
#: report against session 42's (about 1.4x).
LONG_FILES_S = {
    "test_docs_examples.py": 155,
    "integrations/test_ray.py": 100,
    "integrations/test_ray_scripts.py": 92,
    "test_outside_shapes.py": 62,
    "test_outside_shapes3.py": 39,
    "test_outside_shapes2.py": 32,
    "test_docs_console_s34.py": 31,
    "ledger/test_migration_v6_s36.py": 29,
    "test_outside_shapes9.py": 29,
    "test_outside_shapes10.py": 25,
    "test_outside_shapes4.py": 24,
    "integrations/test_lightning.py": 24,
    "test_exit_s24.py": 23,
    "test_distributed_searches.py": 23,
    "test_outside_reports.py": 22,
    "test_new_user_reports.py": 21,
    "test_jobs.py": 21,
    "test_outside_shapes12.py": 19,
    "test_outside_shapes7.py": 18,
    "ledger/test_ledger_hung_s36.py": 17,
    "test_outside_shapes11.py": 17,
    "test_outside_s41_spend.py": 17,
    "test_outside_s37_sklearn_metric.py": 17,
    "analysis/test_forest_paths.py": 17,
    "integrations/test_lightning_refit_ddp_s30.py": 16,
    "integrations/test_integrations_s24.py": 16,
    "integrations/test_integrations_probe_s23.py": 15,
    "test_efficiency_shapes_s20.py": 15,
    "integrations/test_transformers_fpo.py": 14,
    "test_polish_s19.py": 14,
    "integrations/test_mlflow_sklearn_search_s31.py": 14,
    "test_new_user_s18.py": 13,
    "test_new_user_docs.py": 13,
    "ledger/test_fork_inside_sqlite_s35.py": 13,
    "test_outside_s41_finetune.py": 13,
    "test_spend_less_s30.py": 13,
    "tracking/test_pool_terminate_s36.py": 12,
    "test_requeue_s31.py": 12,
    "integrations/test_new_user_s32.py": 12,
    "report/test_latex_layout.py": 12,
    "report/test_formats.py": 11,
    "integrations/test_mixed_roles_s33.py": 11,
    "test_unsaved_runs_s22.py": 11,
    "ledger/test_study_cost.py": 11,
    "integrations/test_transformers.py": 11,
    "integrations/test_budget_integrations.py": 11,
    "ledger/test_shared_ledgers_s34.py": 11,
    "integrations/test_mlflow_new_user_s30.py": 11,
    "test_wording_s9.py": 11,
    "test_outside_shapes5.py": 10,
    "test_outside_s40_fpo_study.py": 10,
    "integrations/test_done_when_dl.py": 10,
    "test_outside_s40_doc_claims.py": 10,
    "ledger/test_ledger_fallback_review_s35.py": 10,
    "test_outside_s40_wording.py": 10,
    "test_end_s25.py": 10,
    "report/test_pruned_steps_s36.py": 9,
    "test_cli_run_budget.py": 9,
    "test_outside_s41_cli_study.py": 9,
    "integrations/test_ledger_lost_midstudy_s35.py": 9,
    "test_review_s16.py": 9,
    "test_new_user_s22.py": 9,
    "test_outside_shapes6.py": 8,
    "ledger/test_store.py": 8,
    "test_inferred_roles_s32.py": 8,
    "integrations/test_wandb.py": 8,
    "test_study_reading_s23.py": 8,
    "test_outside_s40_sklearn_families.py": 8,
    "test_probe_s20_b.py": 8,
    "test_ledger_tree_s31.py": 8,
    "report/test_html_print.py": 8,
    "test_outside_s41_team.py": 8,
    "meters/test_attribution_s28.py": 7,
    "ledger/test_review_s6_backends.py": 7,
    "meters/test_attribution.py": 7,
    "report/test_metric_given_same_report_s49.py": 12,
}


def _loadfile(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("xdist") and config.getvalue("dist") == "loadfile"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadfile``: the files longest first (:data:`LONG_FILES_S`), then the
    others by their number of tests, as pytest-xdist orders them; each file's tests keep their
    order. Every worker collects the same order, which the scheduler (below) keeps.

    pytest-xdist hands a worker the next file in the queue when it is nearly done; ordered by
    number of tests, a long file of few tests could start last and run alone at the end
    (``test_done_when_dl.py``, one test of 27 s, started 30 s before the end in the run above).
    Replayed with that run's per-test times, the three workers end 927 s (by count) or 914 s
    (longest first) after the start; the ideal split is 914 s.
    """
    if not getattr(config, "workerinput", {}).get("longest_files_first"):
        return  # not an xdist worker under --dist loadfile (workers read dist as "no")
    tests_dir = Path(__file__).parent
    counts: dict[Path, int] = {}
    for item in items:
        counts[item.path] = counts.get(item.path, 0) + 1

    def longest_first(item: pytest.Item) -> tuple[float, int]:
        try:
            name = item.path.relative_to(tests_dir).as_posix()
        except ValueError:  # a test outside tests/
            name = ""
        return -LONG_FILES_S.get(name, 0), -counts[item.path]

    items.sort(key=longest_first)  # stable: a file's tests stay in their order


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each pytest-xdist worker whether to collect the longest files first."""
    node.workerinput["longest_files_first"] = _loadfile(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile``: pytest-xdist's file scheduler, taking the files in the order
    the workers collected them (:func:`pytest_collection_modifyitems`) instead of sorting them
    again by their number of tests (``--no-loadscope-reorder``)."""
    if not _loadfile(config):
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_warning_recorded(warning_message: warnings.WarningMessage) -> None:
    """In an xdist worker: report a third-party warning under its built-in base class.

    pytest-xdist's controller rebuilds each warning a worker reports by importing the module of
    its class: one Lightning warning (``PossibleUserWarning``) made the controller import
    lightning, torch, torchmetrics, transformers and scipy (~9 s of CPU, on the cores the
    workers share), a ConvergenceWarning scikit-learn. The summary still names the class (the
    message starts with it); where it was raised and its filters are as before.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    category = warning_message.category
    if category.__module__ == "builtins":
        return
    base = next(c for c in category.__mro__ if c.__module__ == "builtins")
    warning_message.category = base
    name = f"{category.__module__}.{category.__qualname__}"
    warning_message.message = base(f"{name}: {warning_message.message}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if any process tried to reach a non-loopback address.

    The process that made the log's folder (the controller, or a run without workers) removes
    it once read: every ``pytest`` run left a ``gp-guard-*`` folder in the machine's /tmp.
    """
    text = _guard_log.read_text() if _guard_log.exists() else ""
    if text.strip():
        sys.stderr.write("\nNETWORK GUARD: connections outside loopback were attempted:\n" + text)
        session.exitstatus = 1
    if _own_guard_dir:
        shutil.rmtree(_guard_log.parent, ignore_errors=True)


def require(condition: bool, reason: str) -> None:
    """Skip the calling test when a real component is missing; under ``CI=true`` fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fbgemm_engine() -> None:
    """Skip (fail under ``CI=true``) unless torch's quantized engine runs FBGEMM's kernels.

    The int8 FPO counts (``greenprint.fpo._rules_quantized``) follow the x86 and fbgemm
    engines' kernels; qnnpack (ARM) adds a bias as int32, not in float.
    """
    import torch

    require(
        torch.backends.quantized.engine in ("x86", "fbgemm"),
        f"the int8 counts follow FBGEMM's kernels; the engine here is "
        f"{torch.backends.quantized.engine!r}",
    )


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server shared by the tests of this worker (``tests/_pg.py``).

    Each test makes a database of its own on it (``pg_server.new_database()``); a test that
    stops, hangs or kills its server starts one of its own with ``postgres_server()``. One
    server per worker, not one per file: a start is about 1.5 s of CPU.
    """
    from _pg import postgres_server  # imports this module: not at its top

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["orjson", "standard library"], scope="module")
def float_writer(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test with the float texts written by orjson and by the standard library (as where
    orjson is not installed): ``greenprint._fastjson``, whose text is the same either way."""
    from greenprint import _fastjson

    saved = _fastjson._DUMPS
    _fastjson._DUMPS = False if request.param == "orjson" else None  # looked for again: used
    try:
        if request.param == "orjson":  # a dependency of greenprint: installed with it
            assert _fastjson.orjson_used(), "the installed orjson's float texts did not check out"
        else:
            assert not _fastjson.orjson_used()
        yield request.param
    finally:
        _fastjson._DUMPS = saved


@pytest.fixture
def require_component():
    """The :func:`require` helper as a fixture."""
    return require


@pytest.fixture(name="home")
def new_user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty working directory with no greenprint configuration above it (the cwd)."""
    from _clean_env import configured_above

    directory = tmp_path / "new-user"
    directory.mkdir()
    found = configured_above(directory)
    require(not found, f"greenprint configuration above the temporary dir: {found}")
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def chromium_path() -> str:
    """Path to a headless-capable Chromium, or skip (fail under CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


#: The environment variables that move the sysfs trees greenprint's meters read (RAPL and psys
#: under powercap, hwmon CPU and ARM sensors, Intel GPUs and AMD GPUs' sysfs under DRM), and the
#: paths of the GPU drivers' and powermetrics' presence checks (/dev/kfd, /dev/nvidiactl,
#: /proc/driver/nvidia, /usr/bin/powermetrics), of pci.ids (/usr/share) and of the device cgroup
#: (/sys/fs/cgroup): an empty folder means none of them.
SYSFS_ROOT_ENVS = (
    "GREENPRINT_RAPL_ROOT",
    "GREENPRINT_HWMON_ROOT",
    "GREENPRINT_DRM_ROOT",
    "GREENPRINT_DEV_ROOT",
    "GREENPRINT_PROC_DRIVER_ROOT",
    "GREENPRINT_USR_BIN_ROOT",
    "GREENPRINT_HWDATA_ROOT",
    "GREENPRINT_CGROUP_ROOT",
)


@pytest.fixture(scope="session")
def _empty_sysfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One empty folder per sysfs root, for the whole session (hardware detection is cached
    by these paths, so they stay the same from test to test)."""
    base = tmp_path_factory.mktemp("empty-sysfs")
    roots = {}
    for env in SYSFS_ROOT_ENVS:
        folder = base / env.removeprefix("GREENPRINT_").lower()
        folder.mkdir()
        roots[env] = str(folder)
    return roots


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, _empty_sysfs: dict[str, str]) -> None:
    """Keep the user's GREENPRINT_* settings, and this machine's sensors, out of the tests.

    The meters' sysfs roots point at empty folders, so a test gives the same result on a
    machine with RAPL, hwmon sensors or an Intel or AMD GPU as on this VM, which has none: the
    estimates. A test that fakes a tree sets its own root (``monkeypatch.setenv`` or the meter's
    root argument); one about the real machine asks for :func:`real_sysfs`.
    """
    for key in list(os.environ):
        if key.startswith("GREENPRINT_") and not key.startswith("GREENPRINT_NETWORK_GUARD"):
            monkeypatch.delenv(key, raising=False)
    for key, folder in _empty_sysfs.items():
        monkeypatch.setenv(key, folder)


@pytest.fixture
def real_sysfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the meters read this machine's own /sys (the empty stand-ins removed)."""
    for key in SYSFS_ROOT_ENVS:
        monkeypatch.delenv(key, raising=False)
