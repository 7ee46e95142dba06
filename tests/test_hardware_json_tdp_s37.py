"""``greenprint hardware --json`` says the TDP the CPU estimate uses and where it came from (s37).

On a CPU not in the shipped table the JSON read ``"cpu_tdp_w": null`` while the estimate used
4 W per logical CPU (the text output said "per-core default"): a script reading the JSON took
the CPU for unmetered. ``cpu_tdp_w`` stays the table's figure per socket; beside it
``cpu_estimate_tdp_w`` (all sockets), ``cpu_estimate_tdp_source`` (``table:<row>``,
``default-per-core`` or ``configured:<setting>``) and ``cpu_estimate_tdp_detail``, the same
figure the estimate meter takes (a configured ``cpu_tdp_w`` wins over both).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from _clean_env import clean_env
from greenprint.cli._hardware import _as_dict
from greenprint.hardware import detect_hardware
from greenprint.meters._discovery import HardwareInfo, cpu_estimate_for
from greenprint.meters._estimate import DEFAULT_W_PER_CORE


def _hardware(**kw) -> HardwareInfo:
    base = dict(
        cpu_model="AMD EPYC", sockets=1, physical_cores=2, logical_cores=2, ram_gb=16.0,
        gpus=(), meters=(), cpu_tdp_w=None, cpu_tdp_source="default-per-core",
    )  # fmt: skip
    base.update(kw)
    return HardwareInfo(**base)  # type: ignore[arg-type]


def _json(cwd: Path, **env: str) -> dict:
    import shutil
    import sys

    exe = shutil.which("greenprint", path=str(Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run(
        [exe, "hardware", "--json"], cwd=cwd, env={**clean_env(), **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_json_gives_the_tdp_the_estimate_uses_here(tmp_path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("GREENPRINT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = _json(tmp_path)
    hw = detect_hardware()
    meter = cpu_estimate_for(hw)
    assert data["cpu_estimate_tdp_w"] == pytest.approx(meter.tdp_w)
    if hw.cpu_tdp_w is None:  # this machine's model is not in the table (a VM's "AMD EPYC")
        assert data["cpu_tdp_w"] is None
        assert data["cpu_estimate_tdp_source"] == "default-per-core"
        cores = max(hw.logical_cores, 1)
        assert data["cpu_estimate_tdp_w"] == DEFAULT_W_PER_CORE * cores
        assert data["cpu_estimate_tdp_detail"].startswith(
            f"{DEFAULT_W_PER_CORE:g} W/core x {cores}"
        )
    else:
        assert data["cpu_estimate_tdp_source"] == data["cpu_tdp_source"]  # "table:<row>"
    assert data["cpu_estimate_tdp_w"] > 0


def test_a_configured_tdp_is_the_one_the_json_gives(tmp_path):
    data = _json(tmp_path, GREENPRINT_CPU_TDP_W="35")
    assert data["cpu_estimate_tdp_w"] == 35.0
    assert data["cpu_estimate_tdp_source"] == "configured:env:GREENPRINT_CPU_TDP_W"
    assert data["cpu_estimate_tdp_detail"] == "35 W, env:GREENPRINT_CPU_TDP_W"
    (tmp_path / "greenprint.toml").write_text("cpu_tdp_w = 65\n", encoding="utf-8")
    from_file = _json(tmp_path)
    assert from_file["cpu_estimate_tdp_w"] == 65.0
    assert from_file["cpu_estimate_tdp_source"].startswith("configured:")
    assert "greenprint.toml" in from_file["cpu_estimate_tdp_source"]


def test_a_model_in_the_table_gives_its_row_and_the_sockets_times_its_tdp(monkeypatch):
    for name in [k for k in os.environ if k.startswith("GREENPRINT_")]:
        monkeypatch.delenv(name)
    hw = _hardware(
        cpu_model="Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", sockets=2, physical_cores=40,
        logical_cores=80, cpu_tdp_w=150.0, cpu_tdp_source="table:Intel Xeon Gold 6148",
    )  # fmt: skip
    data = _as_dict(hw, {})
    assert data["cpu_tdp_w"] == 150.0  # per socket, as before
    assert data["cpu_estimate_tdp_w"] == 300.0
    assert data["cpu_estimate_tdp_source"] == "table:Intel Xeon Gold 6148"
    assert data["cpu_estimate_tdp_detail"] == "2 x 150 W"
    default = _as_dict(_hardware(logical_cores=6), {})
    assert default["cpu_tdp_w"] is None and default["cpu_estimate_tdp_w"] == 24.0
    assert default["cpu_estimate_tdp_source"] == "default-per-core"
