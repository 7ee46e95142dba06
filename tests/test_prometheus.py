"""Prometheus: live runs as metrics in a node_exporter textfile and on a loopback /metrics endpoint.

The exposition text is checked with prometheus_client's own parser (the reference reader), and
the endpoint is scraped over real loopback HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint import prometheus

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.2}


def parse(text: str) -> dict[str, Any]:
    """Metric families by name, parsed by prometheus_client (skips if it is not installed)."""
    parser = pytest.importorskip("prometheus_client.parser")
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def values(family: Any, **labels: str) -> list[float]:
    return [
        s.value
        for s in family.samples
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith("_created")
    ]


def test_render_a_run_in_base_units():
    with gp.track("resnet", study="cifar", ledger=False, **FAST) as run:
        time.sleep(0.2)
    families = parse(prometheus.render([run]))
    # prometheus_client names a counter's family without its _total suffix
    assert families["greenprint_energy_joules"].type == "counter"
    assert families["greenprint_emissions_grams"].type == "counter"
    assert families["greenprint_power_watts"].type == "gauge"
    assert families["greenprint_run_duration_seconds"].type == "gauge"
    assert values(families["greenprint_runs_active"]) == [1.0]
    energy = families["greenprint_energy_joules"]
    assert {s.labels["component"] for s in energy.samples} == set(run.energy_by_component)
    for component, kwh in run.energy_by_component.items():
        (joules,) = values(energy, run_id=run.id, name="resnet", study="cifar", component=component)
        assert joules == pytest.approx(kwh * 3.6e6)
    (grams,) = values(families["greenprint_emissions_grams"], run_id=run.id)
    assert grams == pytest.approx(run.emissions_kg * 1e3) and grams > 0
    (duration,) = values(families["greenprint_run_duration_seconds"], run_id=run.id)
    assert duration == pytest.approx(run.duration_s)
    assert sum(values(families["greenprint_power_watts"])) > 0


def test_label_values_are_escaped():
    name = 'say "hi"\\ and\nbye'
    with gp.track(name, study="s", ledger=False, **FAST) as run:
        pass
    families = parse(prometheus.render([run]))
    (sample,) = families["greenprint_run_duration_seconds"].samples
    assert sample.labels["name"] == name


def test_default_is_the_live_runs_of_this_process():
    with gp.track("live", ledger=False, **FAST) as run:
        families = parse(prometheus.render())
        assert values(families["greenprint_runs_active"]) == [1.0]
        assert values(families["greenprint_run_duration_seconds"], run_id=run.id)
    families = parse(prometheus.render())
    assert values(families["greenprint_runs_active"]) == [0.0]
    assert not families["greenprint_run_duration_seconds"].samples


def test_power_is_the_mean_since_the_previous_collection():
    with gp.track("p", ledger=False, **FAST) as run:
        time.sleep(0.15)
    collector = prometheus.Collector()
    first = parse(collector.render([run]))
    assert sum(values(first["greenprint_power_watts"])) > 0  # since the run started
    second = parse(collector.render([run]))  # a stopped run uses no more energy
    assert values(second["greenprint_power_watts"]) == [0.0] * len(run.energy_by_component)


# ---------------------------------------------------------------------------------- textfile


def test_write_textfile_atomically(tmp_path):
    with gp.track("tf", study="s", ledger=False, **FAST) as run:
        path = prometheus.write_textfile(tmp_path)
    assert path == tmp_path / f"greenprint_{os.getpid()}.prom"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    families = parse(path.read_text())
    assert values(families["greenprint_run_duration_seconds"], run_id=run.id)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_textfile_refusals(tmp_path):
    with pytest.raises(gp.ConfigError, match="not a directory"):
        prometheus.write_textfile(tmp_path / "missing")
    with pytest.raises(gp.ConfigError, match=r"\.prom"):
        prometheus.write_textfile(tmp_path, filename="metrics.txt")
    with pytest.raises(gp.ConfigError, match="interval_s"):
        prometheus.start_textfile(tmp_path, interval_s=0)
    assert list(tmp_path.iterdir()) == []


def test_textfile_exporter_rewrites_then_removes_the_file(tmp_path):
    with prometheus.start_textfile(tmp_path, interval_s=0.05, filename="gp.prom") as exporter:
        path = exporter.path
        assert values(parse(path.read_text())["greenprint_runs_active"]) == [0.0]
        with gp.track("later", ledger=False, **FAST) as run:
            deadline = time.monotonic() + 10
            while run.id not in path.read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert run.id in path.read_text()
    assert not path.exists()


# ---------------------------------------------------------------------------------- HTTP


def scrape(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_serve_on_loopback():
    with gp.track("served", study="s", ledger=False, **FAST) as run:
        with prometheus.serve(0) as server:
            assert server.host == "127.0.0.1" and server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}/metrics"
            status, content_type, body = scrape(server.url)
            assert status == 200 and content_type == prometheus.CONTENT_TYPE
            assert values(parse(body)["greenprint_run_duration_seconds"], run_id=run.id)
            with pytest.raises(urllib.error.HTTPError) as info:
                scrape(server.url.replace("/metrics", "/"))
            assert info.value.code == 404
    with pytest.raises(urllib.error.URLError):  # the port is released
        scrape(server.url)


def test_serve_refusals():
    with pytest.raises(gp.ConfigError, match="port"):
        prometheus.serve(70000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(gp.ConfigError, match=f"127.0.0.1:{port}"):
            prometheus.serve(port)


# ---------------------------------------------------------------------------------- CLI

SCRAPER = """
import glob, sys, time, urllib.request
out, port, folder = sys.argv[1], sys.argv[2], sys.argv[3]
texts = []
if port != "-":
    url = f"http://127.0.0.1:{port}/metrics"
    texts.append(urllib.request.urlopen(url, timeout=10).read().decode())
if folder != "-":
    for _ in range(600):
        files = glob.glob(folder + "/*.prom")
        if files and "run_id=" in open(files[0]).read():
            break
        time.sleep(0.05)
    texts.append(open(files[0]).read())
open(out, "w").write("\\n".join(texts))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def greenprint_run(tmp_path: Path, *options: str, port: str, folder: str, env: dict[str, str]):
    script = tmp_path / "scrape.py"
    script.write_text(SCRAPER)
    out = tmp_path / "scraped.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprint",
            "run",
            "--ledger",
            str(tmp_path / "g.db"),
            "--name",
            "job",
            "--sample-interval",
            "0.1",
            "--flush-interval",
            "0.5",
            *options,
            "--",
            sys.executable,
            str(script),
            str(out),
            port,
            folder,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text(), done.stderr


def test_cli_run_serves_metrics_while_the_command_runs(tmp_path):
    port = free_port()
    text, stderr = greenprint_run(
        tmp_path, "--prometheus-port", str(port), port=str(port), folder="-", env=dict(os.environ)
    )
    assert f"Prometheus metrics at http://127.0.0.1:{port}/metrics" in stderr
    families = parse(text)
    (sample,) = families["greenprint_run_duration_seconds"].samples
    assert sample.labels["name"] == "job"
    with gp.Ledger(tmp_path / "g.db", create=False) as led:
        assert sample.labels["run_id"] == led.runs()[0].id


def test_cli_run_textfile_from_the_environment(tmp_path):
    folder = tmp_path / "textfiles"
    folder.mkdir()
    env = dict(os.environ, GREENPRINT_PROMETHEUS_TEXTFILE_DIR=str(folder))
    text, _ = greenprint_run(tmp_path, port="-", folder=str(folder), env=env)
    assert values(parse(text)["greenprint_runs_active"]) == [1.0]
    assert list(folder.iterdir()) == []  # removed when the run ended


def test_cli_bad_textfile_dir_is_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprint",
            "run",
            "--ledger",
            str(tmp_path / "g.db"),
            "--prometheus-textfile-dir",
            str(tmp_path / "missing"),
            "--",
            sys.executable,
            "-c",
            "",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"greenprint: error: the Prometheus textfile directory {tmp_path / 'missing'} is not a "
        "directory"
    ]


def test_a_server_on_every_interface_names_the_address_it_took():
    # serve(0, "") listens on every interface; its URL read "http://:PORT/metrics"
    from greenprint.prometheus import serve

    with serve(0, "") as server:
        assert server.url == f"http://0.0.0.0:{server.port}/metrics"
        assert server.host == "0.0.0.0"


def test_cli_textfile_holds_the_run_as_soon_as_the_command_starts(tmp_path):
    """The textfile was written before the run started, then every flush interval (10 s by
    default): a node_exporter scrape in the command's first seconds read
    'greenprint_runs_active 0' and no series of the run. It is written again once the run has
    started, so the command reads its own run at once, with no wait."""
    folder = tmp_path / "textfiles"
    folder.mkdir()
    reader = (
        "import glob, sys; (f,) = glob.glob(sys.argv[1] + '/*.prom'); "
        "open(sys.argv[2], 'w').write(open(f).read())"
    )
    out = tmp_path / "read.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprint",
            "run",
            "--ledger",
            str(tmp_path / "g.db"),
            "--name",
            "job",
            "--prometheus-textfile-dir",
            str(folder),
            "--",
            sys.executable,
            "-c",
            reader,
            str(folder),
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    families = parse(out.read_text())
    assert values(families["greenprint_runs_active"]) == [1.0]
    (sample,) = families["greenprint_run_duration_seconds"].samples
    assert sample.labels["name"] == "job"
    assert list(folder.iterdir()) == []
