"""Session 41: the Hugging Face model card's ``hardware_used`` says how much compute, not a name.

``model_card_co2(run)`` (and so ``cb.create_model_card`` and ``add_co2_to_model_card``) wrote
``hardware_used: Intel(R) Xeon(R) Processor``, the CPU's name alone, where the report's
hardware line and its own model card block say ``Intel(R) Xeon(R) Processor (2 logical CPUs,
24 GB RAM), no GPU``. The Hub documents the field as free text, "how much compute and what
kind, e.g. 8 v100 GPUs" (huggingface/hub-docs, docs/hub/model-cards-co2.md): it now reads as
the report's, GPUs counted by name.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from integrations._frameworks import need_installed

need_installed("transformers", "transformers")


@pytest.fixture(scope="module")
def model_card_co2():
    from greenprint.integrations.transformers import model_card_co2

    return model_card_co2


def test_hardware_used_reads_as_the_reports(tmp_path_factory, model_card_co2) -> None:
    home = empty_home(tmp_path_factory, "card-hardware")
    with gp.track("ft", study="card", ledger=home / "greenprint.db", region="DE") as run:
        run.log(eval_accuracy=0.9)
    used = model_card_co2(run)["hardware_used"]
    cpu = run.record.hardware["cpu_model"]
    assert used.startswith(f"{cpu} (") and " logical CPU" in used and " GB RAM)" in used, used

    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--no-plots", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    assert used == report["model_card"]["co2_eq_emissions"]["hardware_used"]


def test_gpus_are_counted_by_name_and_a_card_given_its_hardware_keeps_it(model_card_co2) -> None:
    with gp.track("gpu", ledger=False) as run:
        pass
    gpu = {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0"}
    hardware = {
        "cpu_model": "AMD EPYC 9654",
        "sockets": 2,
        "logical_cores": 384,
        "ram_gb": 1511.6,
        "gpus": tuple({**gpu, "uuid": f"GPU-{k}"} for k in range(8)),
    }
    record = dataclasses.replace(run.record, hardware=hardware)
    assert model_card_co2(record)["hardware_used"] == (
        "2 x AMD EPYC 9654 (384 logical CPUs, 1512 GB RAM), 8 x NVIDIA H100 80GB HBM3"
    )
    assert model_card_co2(record, hardware_used="8 v100 GPUs")["hardware_used"] == "8 v100 GPUs"
    # a record with no CPU model (made by hand) gives what it has, as before
    bare = dataclasses.replace(run.record, hardware={"gpus": [gpu]})
    assert model_card_co2(bare)["hardware_used"] == "1 x NVIDIA H100 80GB HBM3"


def test_the_card_written_by_add_co2_to_model_card_has_it(tmp_path: Path, model_card_co2) -> None:
    from huggingface_hub import ModelCard

    from greenprint.integrations.transformers import add_co2_to_model_card

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n# tiny\n", encoding="utf-8")
    with gp.track("ft", ledger=False) as run:
        pass
    add_co2_to_model_card(card, run, training_type="fine-tuning")
    block = ModelCard.load(card).data.co2_eq_emissions
    assert block["hardware_used"] == model_card_co2(run)["hardware_used"]
    assert " GB RAM)" in block["hardware_used"]
