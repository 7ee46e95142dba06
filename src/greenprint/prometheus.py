"""Live runs as Prometheus metrics: a node_exporter textfile or a ``/metrics`` endpoint you start.

Opt-in, and nothing is ever pushed anywhere. Two ways to expose the runs this process is
measuring (:func:`greenprint.tracking.active_runs`, read at each scrape or write):

* a **textfile** for node_exporter's textfile collector: :func:`write_textfile` writes one file
  atomically (a temporary file renamed over the old one), :func:`start_textfile` rewrites it every
  ``interval_s`` on a background thread and removes it when stopped;
* an **HTTP endpoint**: :func:`serve` answers ``GET /metrics`` on ``127.0.0.1`` by default (give
  ``host="0.0.0.0"`` to let another machine's Prometheus scrape it).

``greenprint run --prometheus-port PORT`` and ``--prometheus-textfile-dir DIR`` (or
``GREENPRINT_PROMETHEUS_TEXTFILE_DIR``) do the same for a wrapped command.

The text exposition format (version 0.0.4) is written here, so no extra package is needed.
Metric names follow Prometheus' conventions: base units (joules, grams, watts, seconds) as
suffixes, ``_total`` for counters; labels ``run_id``, ``name``, ``study``, ``nested``
(``"true"`` when the run's energy, CO2-eq and time are already inside another run's figures: a
fold inside its trial, a script's run inside the run that started it, a rank inside its node
meter; sum the ``nested="false"`` series) and, per measured component, ``component`` (``cpu``,
``gpu``, ``ram``):

=====================================  =======  ===============================================
metric                                 type     meaning
=====================================  =======  ===============================================
``greenprint_energy_joules_total``     counter  IT energy so far (before PUE), per component
                                                (0 before the run's first meter sample)
``greenprint_power_watts``             gauge    mean IT power between the meter samples since
                                                the previous scrape (the first: since the run
                                                started), per component (none before the
                                                run's first sample)
``greenprint_emissions_grams_total``   counter  CO2-eq so far (PUE and grid intensity applied)
``greenprint_run_duration_seconds``    gauge    wall time so far
``greenprint_runs_active``             gauge    runs being measured by this process
=====================================  =======  ===============================================

A run with no energy meter (``gp.track(..., meters=[])``) has no energy, power or CO2-eq series
(unknown, not 0: an absent series, as Prometheus reads a value it does not have), only its time.

Example:
    >>> import greenprint as gp
    >>> from greenprint import prometheus
    >>> with gp.track("demo", ledger=False) as run:
    ...     text = prometheus.render()
    >>> "greenprint_runs_active 1" in text
    True
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from greenprint import _public
from greenprint._exceptions import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run

__all__ = [
    "CONTENT_TYPE",
    "Collector",
    "MetricsServer",
    "TEXTFILE_DIR_ENV",
    "TextfileExporter",
    "render",
    "serve",
    "start_textfile",
    "write_textfile",
]

logger = logging.getLogger(__name__)

#: The Content-Type of the text exposition format served at ``/metrics``.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The environment variable ``greenprint run`` reads for ``--prometheus-textfile-dir``.
TEXTFILE_DIR_ENV = "GREENPRINT_PROMETHEUS_TEXTFILE_DIR"

_JOULES_PER_KWH = 3.6e6
_HELP = {
    "greenprint_energy_joules_total": ("counter", "IT energy of a live run so far, before PUE."),
    "greenprint_power_watts": (
        "gauge",
        "Mean IT power of a live run between its meter samples since the previous scrape.",
    ),
    "greenprint_emissions_grams_total": (
        "counter",
        "CO2-eq of a live run so far, PUE and grid intensity applied.",
    ),
    "greenprint_run_duration_seconds": ("gauge", "Wall time of a live run so far."),
    "greenprint_runs_active": ("gauge", "Runs this process is measuring."),
}


def _escape(value: object) -> str:
    r"""A label value as the exposition format writes it (``\\``, ``\"`` and ``\n`` escaped)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: Mapping[str, object]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


class Collector:
    """Turns live runs into exposition text; remembers each run's energy for the power gauge.

    One collector per endpoint or textfile: the power it reports is the mean since *its*
    previous collection. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (run id, component) -> (time s of the sample, joules, W) at the previous collection
        self._previous: dict[tuple[str, str], tuple[float, float, float]] = {}

    def render(self, runs: Iterable[Run] | None = None) -> str:
        """The metrics of ``runs`` (default: this process's active runs) as exposition text."""
        if runs is None:
            from greenprint.tracking import active_runs

            runs = active_runs()
        samples: dict[str, list[str]] = {name: [] for name in _HELP}
        now = time.time()
        seen: set[tuple[str, str]] = set()
        count = 0
        with self._lock:
            for run in runs:
                count += 1
                base = {
                    "run_id": run.id,
                    "name": run.name,
                    "study": run.study,
                    "nested": "true" if _nested(run) else "false",
                }
                figures = _Figures.read(run, now)
                for component, kwh in sorted(figures.energy_kwh.items()):
                    joules = kwh * _JOULES_PER_KWH
                    key = (run.id, component)
                    seen.add(key)
                    labels = _labels({**base, "component": component})
                    samples["greenprint_energy_joules_total"].append(
                        f"greenprint_energy_joules_total{labels} {_number(joules)}"
                    )
                    if figures.unsampled:  # no power measured yet: no gauge, not 0 W
                        continue
                    watts = self._power(key, joules, figures)
                    samples["greenprint_power_watts"].append(
                        f"greenprint_power_watts{labels} {_number(max(watts, 0.0))}"
                    )
                labels = _labels(base)
                if figures.metered:  # no energy meter: no series, never 0 g
                    samples["greenprint_emissions_grams_total"].append(
                        f"greenprint_emissions_grams_total{labels} {_number(figures.grams)}"
                    )
                samples["greenprint_run_duration_seconds"].append(
                    f"greenprint_run_duration_seconds{labels} {_number(figures.duration_s)}"
                )
            for key in set(self._previous) - seen:  # runs that ended
                del self._previous[key]
        samples["greenprint_runs_active"].append(f"greenprint_runs_active {count}")
        lines: list[str] = []
        for name, (kind, text) in _HELP.items():
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples[name])
        return "\n".join(lines) + "\n"

    def _power(self, key: tuple[str, str], joules: float, figures: _Figures) -> float:
        """Mean power in W of one run's component since the previous collection (lock held).

        Energy moves at the run's meter samples only, so the power is taken between the
        samples: from the last sample seen at the previous collection (the first time: from
        the run's start) to the latest one. Collected again before a new sample, a running
        run's power is the last one measured (0 W once it has ended), not the 0 W of a
        counter that has not moved yet, nor twice the power at the next collection.
        """
        if figures.sample_t is None:  # not a tracking.Run: the wall clock between collections
            last_t, last_j, _ = self._previous.get(key, (figures.started_t, 0.0, 0.0))
            dt = figures.now - last_t
            watts = (joules - last_j) / dt if dt > 0 else 0.0
            self._previous[key] = (figures.now, joules, watts)
            return watts
        last_t, last_j, last_w = self._previous.get(key, (figures.started_t, 0.0, 0.0))
        if figures.sample_t > last_t:
            watts = (joules - last_j) / (figures.sample_t - last_t)
            self._previous[key] = (figures.sample_t, joules, watts)
            return watts
        return last_w if figures.running else 0.0


class _Figures:
    """A run's figures read at once, under its lock: a meter sample never falls between them.

    Attributes:
        now: when they were read (s since the epoch).
        energy_kwh: IT energy per component, kWh.
        grams: CO2-eq so far, g.
        duration_s: wall time so far, s.
        started_t: when the run started (s since the epoch).
        sample_t: when its energy was last sampled (s since the epoch), ``None`` when the run
            does not say (not a :class:`~greenprint.tracking.Run`).
        running: whether it is still measuring.
        unsampled: a started run its meters have not sampled yet: ``energy_kwh`` holds each of
            its components at 0, and no power has been measured.
        metered: whether the run measures energy; one with no meter (``meters=[]``) has no
            energy, power or CO2-eq series (unknown, never 0).
    """

    __slots__ = (
        "duration_s",
        "energy_kwh",
        "grams",
        "metered",
        "now",
        "running",
        "sample_t",
        "started_t",
        "unsampled",
    )

    def __init__(self, run: Any, now: float) -> None:
        self.now = now
        self.energy_kwh: dict[str, float] = dict(run.energy_by_component)
        self.grams = float(run.emissions_kg) * 1e3
        self.duration_s = float(run.duration_s)
        started = getattr(run, "_started_at", None)
        self.unsampled = bool(started) and not self.energy_kwh
        meters = getattr(run, "_meters", None)  # set when a tracking.Run starts
        self.metered = meters is None or bool(getattr(meters, "components", ()))
        if self.unsampled:
            # before the run's first meter sample: each component it measures at 0 J, as its
            # CO2-eq reads 0 g, so that a sum over the energy counts the run from its start
            self.energy_kwh = dict.fromkeys(getattr(meters, "components", ()) or (), 0.0)
        sample = getattr(run, "_last_sample_t", None)
        self.started_t = float(started) if started else now - self.duration_s
        self.sample_t = float(sample) if started and sample is not None else None
        self.running = getattr(run, "_state", "running") == "running"

    @classmethod
    def read(cls, run: Any, now: float) -> _Figures:
        lock = getattr(run, "_lock", None)
        if lock is None:
            return cls(run, now)
        with lock:  # a re-entrant lock: the properties take it again
            return cls(run, now)


def _nested(run: Any) -> bool:
    """Whether a run's cost is inside another run's figures, so that a sum must leave it out.

    A run nested in a run of this process (a fold in its trial), one in a child process of a
    run (its process tree is inside the parent's meter), and a rank of a job whose node its local
    rank 0 meters (provenance ``this process only; the node is metered by ...``) are inside; a
    top-level run, a child on another host, a rank on a shared node and a run given
    ``node_meter=False`` (each measures its own process) add to the total.
    """
    if getattr(run, "_contained", None):
        return True
    job = getattr(run, "_job", None)
    options = getattr(run, "_options", None) or {}
    return bool(
        job is not None
        and job.job_id is not None
        and not job.node_meter
        and not job.shared
        and options.get("node_meter") is None
    )


def render(runs: Iterable[Run] | None = None) -> str:
    """The metrics of ``runs`` (default: this process's active runs) in the text format.

    The power gauge is the mean since each run started (a :class:`Collector` remembers the
    previous collection instead).
    """
    return Collector().render(runs)


# ---------------------------------------------------------------------------------- textfile


def _textfile_path(directory: str | os.PathLike[str], filename: str | None) -> Path:
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"the Prometheus textfile directory {folder} is not a directory")
    name = filename or f"greenprint_{os.getpid()}.prom"
    if not name.endswith(".prom") or "/" in name or os.sep in name:
        raise ConfigError(f"a textfile's name must end in .prom (no directory), not {name!r}")
    return folder / name


#: Textfiles this process wrote, to remove when it exits: path -> (pid, inode) of the last write.
_written: dict[Path, tuple[int, int]] = {}
_written_lock = threading.Lock()


def _remove_written() -> None:
    """Remove the textfiles this process wrote that still hold its last write (at exit).

    A file rewritten since by another process (a new inode), or written by the process this
    one was forked from, is left alone.
    """
    with _written_lock:
        entries = list(_written.items())
        _written.clear()
    for path, (pid, inode) in entries:
        if pid != os.getpid():
            continue
        try:
            if path.stat().st_ino == inode:
                path.unlink()
        except OSError:
            pass  # gone already, or not ours to remove


atexit.register(_remove_written)


def write_textfile(
    directory: str | os.PathLike[str],
    *,
    filename: str | None = None,
    collector: Collector | None = None,
) -> Path:
    """Write the live runs' metrics into ``directory`` for node_exporter, atomically.

    The text goes to a temporary file in the same directory, which is then renamed over the
    target, so node_exporter never reads half a file. The file is removed when this process
    exits (unless another process has rewritten it since), so node_exporter stops reporting
    runs that ended with it.

    Args:
        directory: node_exporter's ``--collector.textfile.directory``.
        filename: the file's name, ending in ``.prom`` (default ``greenprint_<pid>.prom``, so
            several processes on a node do not overwrite each other).
        collector: the collector to use (keeps the power gauge's previous reading).

    Returns:
        The file written.

    Raises:
        ConfigError: ``directory`` is not a directory, a bad ``filename``, or the file cannot be
            written.
    """
    path = _textfile_path(directory, filename)
    text = (collector or Collector()).render()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # node_exporter may run as another user
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        inode = path.stat().st_ino
    except OSError as e:
        raise ConfigError(f"cannot write the Prometheus textfile {path}: {e}") from e
    with _written_lock:
        _written[path.absolute()] = (os.getpid(), inode)
    return path


class TextfileExporter:
    """Rewrites a node_exporter textfile every ``interval_s`` on a daemon thread.

    Use :func:`start_textfile`. :meth:`stop` writes no more and removes the file, so
    node_exporter stops reporting runs that ended with this process.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        interval_s: float = 15.0,
        filename: str | None = None,
    ) -> None:
        if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s)) or (
            interval_s <= 0
        ):
            raise ConfigError(
                f"interval_s must be a positive number of seconds, not {interval_s!r}"
            )
        self.path = _textfile_path(directory, filename)
        self.interval_s = float(interval_s)
        self._collector = Collector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> Path:
        """Write the file now."""
        return write_textfile(self.path.parent, filename=self.path.name, collector=self._collector)

    def start(self) -> TextfileExporter:
        """Write the file, then keep rewriting it on a daemon thread.

        Raises:
            ConfigError: the first write failed (later failures are logged).
        """
        self.write()
        self._thread = threading.Thread(
            target=self._loop, name="greenprint-prometheus-textfile", daemon=True
        )
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.write()
            except ConfigError as e:
                logger.warning("greenprint: %s", e)

    def stop(self) -> None:
        """Stop rewriting and remove the file. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.path.unlink(missing_ok=True)
        with _written_lock:
            _written.pop(self.path.absolute(), None)

    def __enter__(self) -> TextfileExporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_textfile(
    directory: str | os.PathLike[str],
    *,
    interval_s: float = 15.0,
    filename: str | None = None,
) -> TextfileExporter:
    """Write the live runs' metrics into ``directory`` now and every ``interval_s`` seconds.

    Args:
        directory: node_exporter's textfile directory.
        interval_s: seconds between rewrites.
        filename: as :func:`write_textfile`.

    Returns:
        The running exporter; call :meth:`TextfileExporter.stop` (or use it in ``with``) to
        stop it and remove the file.

    Raises:
        ConfigError: a bad directory, file name or interval, or the first write failed.
    """
    return TextfileExporter(directory, interval_s=interval_s, filename=filename).start()


# ---------------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
            self.send_error(404, "greenprint serves /metrics only")
            return
        body = self.server.collector.render().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("prometheus endpoint: %s %s", self.address_string(), args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    collector: Collector

    def server_bind(self) -> None:
        """Bind, without HTTPServer's look-up of the host's name (``socket.getfqdn``).

        That look-up asked the network's DNS server for ``::1``'s name (a PTR query: /etc/hosts
        seldom lists ``::1``), from a server that is loopback only; nothing here reads the name.
        """
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _server_class(host: str, port: int) -> type[_Server]:
    """The server of ``host``'s address family: IPv4 unless ``host`` has IPv6 addresses only.

    ``0.0.0.0``, ``127.0.0.1`` and ``localhost`` stay IPv4 wherever ``localhost`` also resolves
    to ``::1``; ``::1``, ``::`` and a name with IPv6 addresses only are served on IPv6.

    Raises:
        OSError: ``host`` cannot be resolved.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    families = {info[0] for info in infos}
    return _Server6 if socket.AF_INET6 in families and socket.AF_INET not in families else _Server


class MetricsServer:
    """An HTTP server answering ``GET /metrics`` with the live runs, on a daemon thread.

    Use :func:`serve`. Attributes ``host`` and ``port`` are where it listens (the port the
    system chose, when 0 was asked for).
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"a port is an integer from 0 to 65535, not {port!r}")
        if not isinstance(host, str):
            raise ConfigError(
                f"host must be an address or host name such as '127.0.0.1', not {host!r}"
            )
        try:
            # socket encodes a name as IDNA before any lookup: "bad..host" (an empty label) or
            # a label over 63 characters raised UnicodeError from deep inside getaddrinfo
            host.encode("idna")
            self._server = _server_class(host, port)((host, port), _Handler)
        except UnicodeError as e:
            raise ConfigError(
                f"cannot serve Prometheus metrics on {host}:{port}: {host!r} is not a valid "
                "address or host name"
            ) from e
        except OSError as e:
            raise ConfigError(
                f"cannot serve Prometheus metrics on {host}:{port}: {e.strerror or e}"
            ) from e
        self._server.collector = Collector()
        # "" binds every interface: say which address it took ("0.0.0.0"), as the URL needs one
        self.host = host or str(self._server.server_address[0])
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="greenprint-prometheus-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The metrics URL (``http://127.0.0.1:PORT/metrics``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve the live runs' metrics at ``http://HOST:PORT/metrics`` until closed.

    Args:
        port: the TCP port (0: any free port; read it from the result's ``port``).
        host: the address to bind: loopback by default; ``"0.0.0.0"`` for every interface
            (IPv4), ``"::1"`` or ``"::"`` for IPv6.

    Returns:
        The running server; :meth:`MetricsServer.close` (or ``with``) stops it.

    Raises:
        ConfigError: a bad port, a host that is not a string or not a valid name
            (``"bad..host"``), or the address cannot be bound (in use, not permitted).
    """
    return MetricsServer(port, host)


_public.publish(__name__, globals())
