"""Apple silicon: CPU, GPU and Neural Engine energy from ``powermetrics``.

``powermetrics`` (macOS, root only) samples the SoC's energy model. greenprint runs::

    sudo -n /usr/bin/powermetrics --samplers cpu_power,gpu_power -i 1000 -f plist

in the background (without ``sudo`` when already root) and reads its output as it comes: one
XML property list per interval, each followed by a NUL byte. Per sample it takes
``elapsed_ns`` and, under ``processor``, ``cpu_power``, ``gpu_power`` and ``ane_power`` in mW
(macOS 13 and newer) times the interval, else ``cpu_energy``, ``gpu_energy``, ``ane_energy`` in
mJ over the interval (macOS 12). The ``cpu`` component is the CPU clusters; ``gpu`` is the GPU
plus the Neural Engine (both accelerators; the provenance says ``gpu+ane``). Memory is not in
either: RAM stays estimated. Between samples the energy of the interval in progress is
extrapolated at the last sample's power (at most two intervals), so a read lags nothing; the
cumulative figure never goes backwards.

Never a hang: the subprocess is read by a thread; :meth:`PowermetricsMeter.read` only looks at
what arrived. A process that exits (no ``sudo`` rights, killed) or sends nothing for
:func:`stall_after_s` makes ``read()`` raise :class:`~greenprint.MeterError`, and the meter set
goes on with the estimate, labelled. :meth:`~PowermetricsMeter.close` terminates it, waiting at
most a second before killing it; the reader threads close the pipes when they end. Should this
process die without closing (``kill -9``), ``powermetrics`` dies of ``SIGPIPE`` at its next
sample, as nobody reads its output any more.

``powermetrics`` needs root. Without it, ``greenprint hardware`` prints the sudoers line that
lets this user run it (and nothing else) without a password (:data:`SUDOERS_FIX`).
``$GREENPRINT_POWERMETRICS`` replaces the command (tests replay recorded output through
:func:`greenprint.testing.make_fake_powermetrics`). IOReport (``libIOReport.dylib``, what
``powermetrics`` itself reads, without root) is future work: it cannot be tested here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from greenprint._exceptions import MeterError
from greenprint._provenance import Provenance
from greenprint.meters._apple_parse import (
    PowermetricsSample,
    parse_powermetrics_plist,
    parse_powermetrics_text,
    sample_from_plist,
)
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._counter import SharedEnergy
from greenprint.meters._status import MeterStatus
from greenprint.meters._where import POWERMETRICS_ENV, not_macos, powermetrics_path

if TYPE_CHECKING:  # pragma: no cover
    import subprocess

__all__ = [
    "DEFAULT_INTERVAL_MS",
    "POWERMETRICS",
    "POWERMETRICS_ENV",
    "SUDOERS_FIX",
    "PowermetricsMeter",
    "PowermetricsProbe",
    "PowermetricsSample",
    "PowermetricsSource",
    "parse_powermetrics_plist",
    "parse_powermetrics_text",
    "powermetrics_argv",
    "probe_powermetrics",
    "sample_from_plist",
    "stall_after_s",
]

logger = logging.getLogger(__name__)

POWERMETRICS = "/usr/bin/powermetrics"
DEFAULT_INTERVAL_MS = 1000
#: The fix when ``sudo`` would ask for a password (``{user}``: the login name).
SUDOERS_FIX = (
    "let this user run powermetrics as root without a password: sudo visudo -f "
    "/etc/sudoers.d/greenprint and add the line '{user} ALL=(root) NOPASSWD: "
    + POWERMETRICS
    + "' (or run as root)"
)
_SAMPLERS = "cpu_power,gpu_power"


def stall_after_s(interval_ms: int) -> float:
    """Seconds without a sample after which the process counts as stuck: 3 intervals + 2 s."""
    return 3 * interval_ms / 1000.0 + 2.0


def powermetrics_argv(
    interval_ms: int = DEFAULT_INTERVAL_MS,
    *,
    environ: Mapping[str, str] | None = None,
    as_root: bool | None = None,
) -> list[str]:
    """The command run: ``$GREENPRINT_POWERMETRICS`` if set, else (``sudo -n``) powermetrics."""
    env = os.environ if environ is None else environ
    override = env.get(POWERMETRICS_ENV)
    if override:
        import shlex

        try:
            return shlex.split(override)
        except ValueError:  # an unclosed quote: no command (probe_powermetrics says why)
            return []
    root = (os.geteuid() == 0) if as_root is None and hasattr(os, "geteuid") else bool(as_root)
    path = powermetrics_path()
    head = [path] if root else ["sudo", "-n", path]
    return [*head, "--samplers", _SAMPLERS, "-i", str(interval_ms), "-f", "plist"]


@dataclass(frozen=True)
class PowermetricsProbe:
    """What :func:`probe_powermetrics` found.

    Attributes:
        argv: the command the meter will run (empty when unusable).
        status: usable or not, why, and the fix.
    """

    argv: tuple[str, ...]
    status: MeterStatus


Runner = Callable[[Sequence[str]], "tuple[int, str]"]


def _run(argv: Sequence[str]) -> tuple[int, str]:
    import subprocess

    try:
        out = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} did not answer within 3 s"
    except OSError as e:
        return 127, str(e.strerror or e)
    return out.returncode, (out.stderr or out.stdout).strip()


def probe_powermetrics(
    *,
    environ: Mapping[str, str] | None = None,
    system: str | None = None,
    machine: str | None = None,
    as_root: bool | None = None,
    runner: Runner | None = None,
    interval_ms: int = DEFAULT_INTERVAL_MS,
) -> PowermetricsProbe:
    """Whether ``powermetrics`` can meter this Mac. Never raises; runs at most ``sudo -n -l``.

    Args:
        environ: environment (default ``os.environ``); ``$GREENPRINT_POWERMETRICS`` replaces
            the command and skips the platform checks.
        system: ``sys.platform`` (default: this one).
        machine: ``platform.machine()`` (default: this one); Apple silicon is ``"arm64"``.
        as_root: whether this process is root (default: its effective uid is 0).
        runner: runs a command and returns ``(exit status, output)`` (injectable for tests).
        interval_ms: sampling interval, in ms.
    """
    env = os.environ if environ is None else environ
    run = runner or _run
    argv = powermetrics_argv(interval_ms, environ=env, as_root=as_root)
    if env.get(POWERMETRICS_ENV):
        import shutil

        if not argv or shutil.which(argv[0]) is None:
            reason = (
                f"${POWERMETRICS_ENV}={env[POWERMETRICS_ENV]!r} is not a command line"
                if not argv
                else f"${POWERMETRICS_ENV}: no program {argv[0]!r} (not found or not executable)"
            )
            fix = f"set ${POWERMETRICS_ENV} to the powermetrics command to run, or unset it"
            return PowermetricsProbe((), MeterStatus("powermetrics", False, reason, fix))
        reason = f"cpu and gpu+ane from {' '.join(argv)} (${POWERMETRICS_ENV})"
        return PowermetricsProbe(tuple(argv), MeterStatus("powermetrics", True, reason, None))
    elsewhere = not_macos(env, system)
    if elsewhere is not None:
        return PowermetricsProbe((), elsewhere)
    if machine is None:
        import platform  # macOS only

        machine = platform.machine()
    if machine != "arm64":
        reason = (
            f"an Intel Mac ({machine}): powermetrics splits energy by component only on Apple "
            "silicon"
        )
        return PowermetricsProbe((), MeterStatus("powermetrics", False, reason, None))
    path = powermetrics_path()  # under $GREENPRINT_USR_BIN_ROOT in tests
    if not os.path.exists(path):
        reason = f"no {path}"
        return PowermetricsProbe((), MeterStatus("powermetrics", False, reason, None))
    root = argv[0] == path
    if not root:
        code, out = run(["sudo", "-n", "-l", path])
        if code != 0:
            user = env.get("USER") or env.get("LOGNAME") or "$USER"
            reason = "powermetrics needs root and sudo would ask for a password" + (
                f" ({out.splitlines()[0]})" if out else ""
            )
            fix = SUDOERS_FIX.format(user=user)
            return PowermetricsProbe((), MeterStatus("powermetrics", False, reason, fix))
    how = "as root" if root else "through sudo -n"
    reason = f"cpu and gpu+ane from powermetrics {how}, sampled every {interval_ms} ms"
    return PowermetricsProbe(tuple(argv), MeterStatus("powermetrics", True, reason, None))


class PowermetricsSource:
    """One ``powermetrics`` process and the energy it reported, shared by the cpu and gpu meters.

    Args:
        argv: the command (see :func:`powermetrics_argv`).
        interval_ms: its sampling interval, in ms (for the stall deadline and extrapolation).
        clock: monotonic clock in s.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.argv = list(argv)
        self.interval_ms = interval_ms
        self.clock = clock
        self._clock = clock
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._users = 0
        self._totals = {"cpu": 0.0, "gpu": 0.0}
        self._last: PowermetricsSample | None = None
        self._t_sample = 0.0
        self._t_start = 0.0
        self._samples = 0
        self._stderr: list[str] = []
        self._failed: str | None = None
        self._drainer: threading.Thread | None = None

    @property
    def samples(self) -> int:
        """Samples received so far."""
        return self._samples

    def acquire(self) -> None:
        """Start the process if no meter holds it yet.

        Raises:
            MeterError: the command cannot be started.
        """
        import subprocess

        with self._lock:
            self._users += 1
            if self._proc is not None:
                return
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as e:
                self._users -= 1
                raise MeterError(f"cannot run {self.argv[0]}: {e.strerror or e}") from e
            self._t_start = self._t_sample = self._clock()
        threads = []
        for target, stream in ((self._pump, self._proc.stdout), (self._drain, self._proc.stderr)):
            thread = threading.Thread(
                target=target, args=(stream,), name="greenprint-powermetrics", daemon=True
            )
            thread.start()
            threads.append(thread)
        self._drainer = threads[1]

    def _pump(self, stream: IO[bytes]) -> None:
        """Read samples until the pipe ends (the process exited), then close it."""
        try:
            self._pump_samples(stream.fileno())
        finally:
            stream.close()

    def _pump_samples(self, fd: int) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                return
            samples, buffer = parse_powermetrics_plist(buffer + chunk)
            if samples:
                now = self._clock()
                with self._lock:
                    for s in samples:
                        self._totals["cpu"] += s.energy_j("cpu")
                        self._totals["gpu"] += s.energy_j("gpu")
                        self._samples += 1
                    self._last = samples[-1]
                    self._t_sample = now
            if len(buffer) > 16 * 2**20:  # no NUL for 16 MiB: not powermetrics output
                with self._lock:
                    self._failed = f"{self.argv[0]} sent 16 MiB without a complete sample"
                return

    def _drain(self, stream: IO[bytes]) -> None:
        """Keep the last lines of stderr (for the failure message) until the pipe ends."""
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").strip()
                if line:
                    with self._lock:
                        self._stderr = [*self._stderr[-4:], line]
        except (OSError, ValueError) as e:
            logger.debug("powermetrics stderr: %s", e)
        finally:
            stream.close()

    def energy_j(self, component: str) -> float:
        """Cumulative energy of ``component`` since the process started, in J.

        Raises:
            MeterError: the process exited, or sent no sample for :func:`stall_after_s`.
        """
        now = self._clock()
        with self._lock:
            proc = self._proc
            if proc is None:
                raise MeterError("powermetrics is not running")
            if self._failed:
                raise MeterError(self._failed)
            code = proc.poll()
        if code is not None:
            if self._drainer is not None:  # its last words on stderr say why (no rights...)
                self._drainer.join(0.2)  # within the meter set's 0.4 s read deadline
            with self._lock:
                said = f": {self._stderr[-1]}" if self._stderr else ""
            raise MeterError(f"powermetrics exited with status {code}{said}")
        with self._lock:
            quiet_s = now - self._t_sample
            if quiet_s > stall_after_s(self.interval_ms):
                raise MeterError(f"powermetrics sent no sample for {quiet_s:.1f} s")
            total = self._totals[component]
            if self._last is not None:  # the interval in progress, at the last power
                cap = 2 * self.interval_ms / 1000.0
                total += self._last.power_w(component) * min(max(quiet_s, 0.0), cap)
            return total

    def release(self) -> None:
        """Stop the process once no meter holds it: terminate, then kill after 1 s."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._proc is None:
                return
            proc, self._proc = self._proc, None
        import subprocess

        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    logger.warning("powermetrics (pid %d) did not exit after SIGKILL", proc.pid)
            except OSError as e:
                logger.debug("stopping powermetrics: %s", e)


class PowermetricsMeter(Meter):
    """Energy of the CPU (``"cpu"``) or GPU + Neural Engine (``"gpu"``) from ``powermetrics``.

    Args:
        component: ``"cpu"`` or ``"gpu"``.
        source: the shared :class:`PowermetricsSource`.
        tree: process tree; the ``cpu`` share is the tree's share of busy CPU time, as for
            RAPL. The ``gpu`` is not attributed (``process_j`` is ``None``).
        chip: the chip's name (``"Apple M2 Pro"``), for the GPU estimate should
            ``powermetrics`` die before its first sample.
    """

    def __init__(
        self,
        component: str,
        source: PowermetricsSource,
        *,
        tree: ProcessTree | None = None,
        chip: str = "",
    ) -> None:
        if component not in ("cpu", "gpu"):
            raise ValueError(f"powermetrics meters 'cpu' or 'gpu', not {component!r}")
        self.component = component
        self.source = source
        self.chip = chip
        self._held = False
        self._last_j = 0.0
        # the cpu's energy shared out by the tree's CPU share over each step, as for RAPL
        self._energy = SharedEnergy(tree if component == "cpu" else None, "cpu")

    @property
    def origin(self) -> Provenance:
        """``Provenance("measured", "powermetrics:cpu")``, or ``"powermetrics:gpu+ane"``."""
        return Provenance(
            "measured", "powermetrics:" + ("cpu" if self.component == "cpu" else "gpu+ane")
        )

    @property
    def provenance(self) -> str:
        """``"powermetrics:cpu"`` or ``"powermetrics:gpu+ane"``."""
        return str(self.origin)

    def start(self) -> None:
        """Start (or share) the process; energy is counted from here."""
        if not self._held:
            self.source.acquire()
            self._held = True
        self._last_j = self.source.energy_j(self.component)
        self._energy.begin()

    def read(self) -> MeterReading:
        """Cumulative energy since :meth:`start`, in J.

        Raises:
            MeterError: the process exited or stalled (the message says which).
        """
        if not self._held:
            self.start()
        now_j = self.source.energy_j(self.component)
        delta = max(now_j - self._last_j, 0.0)  # an extrapolation overshoot is held, not undone
        self._last_j = max(now_j, self._last_j)
        return self._energy.add(delta)

    def estimate_if_unmeasured(self, *, since: float) -> Meter | None:
        """For the ``gpu``, when ``powermetrics`` sent no sample: the chip's GPU TDP, or unknown.

        Apple publishes no GPU power for its chips and the shipped table has none, so this is
        in practice ``estimate:gpu:unknown (powermetrics sent no sample; no GPU TDP known for
        Apple M2: GPU energy not counted)``, never a mean power of 0 W. (The ``cpu`` has the CPU
        estimate in its shadow.)
        """
        if self.component != "gpu" or self.source.samples:
            return None
        from greenprint.meters._estimate import UnknownEnergyMeter
        from greenprint.meters._gpu_tdp import (
            EstimatedGpu,
            GpuTdpEstimateMeter,
            match_gpu_tdp,
        )

        chip = self.chip or "this Mac"
        match = match_gpu_tdp(self.chip) if self.chip else None
        if match is not None:
            gpu = EstimatedGpu("GPU-0", chip, match.tdp_w, f"table:{match.model}")
            return GpuTdpEstimateMeter([gpu], clock=self.source.clock, started_at=since)
        why = f"powermetrics sent no sample; no GPU TDP known for {chip}: GPU energy not counted"
        return UnknownEnergyMeter("gpu", why)

    def close(self) -> None:
        """Let go of the process (stopped when the other meter lets go too)."""
        if self._held:
            self._held = False
            self.source.release()
