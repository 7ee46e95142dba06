import os
import signal
import subprocess
import sys
import time

import greenprint as gp
from greenprint.cli import main

GP = [sys.executable, "-m", "greenprint.cli"]


def test_run_finished_prints_price_tag_and_records(tmp_path, capsys):
    ledger = str(tmp_path / "l.db")
    rc = main(
        [
            "run",
            "--ledger",
            ledger,
            "--study",
            "cli",
            "--name",
            "hello",
            "--sample-interval",
            "0.05",
            "--flush-interval",
            "0.1",
            "--region",
            "DE",
            "--",
            sys.executable,
            "-c",
            "print('hi')",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "kWh" in err and "CO2-eq" in err and "estimate" in err
    (rec,) = gp.Ledger(ledger).runs(study="cli")
    assert rec.status == "finished" and rec.name == "hello"
    assert "print('hi')" in rec.command
    assert "DE" in rec.intensity_source or "DEU" in rec.intensity_source


def test_run_passes_exit_status_through_and_records_failed(tmp_path):
    ledger = str(tmp_path / "l.db")
    rc = main(["run", "--ledger", ledger, "-q", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert rc == 3
    (rec,) = gp.Ledger(ledger).runs()
    assert rec.status == "failed" and "3" in rec.error


def test_run_without_command_is_a_usage_error(tmp_path, capsys):
    assert main(["run", "--ledger", str(tmp_path / "l.db")]) == 2
    assert not (tmp_path / "l.db").exists()
    assert capsys.readouterr().err == (
        "greenprint: error: Missing argument 'CMD...' (see 'greenprint run --help')\n"
    )


def test_unknown_options_and_commands_are_one_line_exit_2(capsys):
    assert main(["hardware", "--bogus"]) == 2
    assert capsys.readouterr().err == (
        "greenprint: error: No such option '--bogus' (see 'greenprint hardware --help')\n"
    )
    assert main(["nope"]) == 2
    assert capsys.readouterr().err == (
        "greenprint: error: No such command 'nope' (see 'greenprint --help')\n"
    )


def test_run_unknown_command_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprint.cli",
            "run",
            "--ledger",
            str(tmp_path / "l.db"),
            "--",
            "no-such-program-xyz",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "command not found" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_bad_pue_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [*GP, "run", "--ledger", str(tmp_path / "l.db"), "--pue", "-1", "--", "true"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("greenprint: error:") and "Traceback" not in out.stderr


def test_run_bad_configured_cpu_tdp_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [*GP, "run", "--ledger", str(tmp_path / "l.db"), "--", "true"],
        capture_output=True,
        text=True,
        env={**os.environ, "GREENPRINT_CPU_TDP_W": "-5"},
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "greenprint: error: cpu_tdp_w must be a finite number of W with 0 < x <= 5600, got '-5' "
        "(env:GREENPRINT_CPU_TDP_W)"
    )


def test_run_forwards_sigterm_and_records_interrupted(tmp_path):
    ledger = str(tmp_path / "l.db")
    proc = subprocess.Popen(
        [
            *GP,
            "run",
            "--ledger",
            ledger,
            "--sample-interval",
            "0.05",
            "--flush-interval",
            "0.1",
            "--",
            sys.executable,
            "-c",
            "import time; print('up', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "up"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=20)
    assert rc == 128 + signal.SIGTERM
    (rec,) = gp.Ledger(ledger).runs()
    assert rec.status == "interrupted"
    assert rec.duration_s > 0.2


def test_tracked_script_inside_greenprint_run_is_a_child(tmp_path):
    ledger = str(tmp_path / "l.db")
    code = (
        "import greenprint as gp\n"
        "with gp.track('inner', sample_interval_s=0.05, flush_interval_s=0.1):\n"
        "    pass\n"
    )
    rc = main(
        ["run", "--ledger", ledger, "-q", "--name", "outer", "--", sys.executable, "-c", code]
    )
    assert rc == 0
    runs = {r.name: r for r in gp.Ledger(ledger).runs()}
    assert runs["inner"].parent_id == runs["outer"].id
