"""Session 30: a second Hugging Face ``trainer.train()`` of one model under DDP, as a user met it.

Two-stage fine-tuning (``Trainer(model=model, ...).train()``, then another Trainer's
``train()`` of the same model) under ``torchrun`` with 2 CPU processes (gloo): in one process
the later training's run takes the earlier one's as a ``part`` (one training, one trial); with
several processes each ``train()`` stayed a trial of its own (``trained_again`` was told not to
link), so the study read a trial per stage, the final model's trial at a fraction of what
training it cost. Now the node's earlier training run (the other process's run still its
part) is a part of the node's later one, as in one process and as for Lightning's ``ddp``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _script_fork import run_torchrun
from integrations._ddp_reads import (
    assert_ranks_are_parts_of_their_nodes,
    assert_two_trials_the_stages_one,
    runs_by_name,
)
from integrations._frameworks import need_installed

#: The constant power, in W, of the test meters.
WATTS = 100.0

#: One process of ``torchrun --nproc-per-node 2``: a tiny BERT trained for 2 steps by a
#: Trainer, then fine-tuned by another Trainer (the same model object, the same arguments);
#: another model (another configuration) trained by a third Trainer. Each Trainer has its own
#: callback, the local process 0's meter the test meter.
SCRIPT = """
import os, sys
sys.path[:0] = [@TESTS@, @INTEGRATIONS@]
import torch, transformers
from transformers import Trainer, TrainingArguments
from integrations._hf import tiny_bert
from tracking._meters import ConstantProcessPower
from greenprint.integrations.transformers import GreenprintCallback

transformers.logging.set_verbosity_error()
gen = torch.Generator().manual_seed(0)
examples = [
    {"input_ids": torch.randint(1, 50, (8,), generator=gen),
     "attention_mask": torch.ones(8, dtype=torch.long), "labels": torch.tensor(k % 2)}
    for k in range(16)
]
args = TrainingArguments(output_dir="out", report_to="none", use_cpu=True, ddp_backend="gloo",
                         per_device_train_batch_size=4, max_steps=2, save_strategy="no",
                         disable_tqdm=True)


def trainer(name, model):
    cb = GreenprintCallback(name, study="retrain", ledger=os.path.abspath("gp.db"),
                            meters=ConstantProcessPower(@WATTS@), sample_interval_s=0.05,
                            flush_interval_s=0.1)
    return Trainer(model=model, args=args, train_dataset=examples, callbacks=[cb])


model = tiny_bert()
trainer("tune", model).train()
trainer("tune", model).train()  # stage 2: the same model, another Trainer
trainer("other", tiny_bert()).train()  # another model: a training of its own
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # one torchrun of 2 processes, each importing transformers
def test_under_torchrun_a_model_trained_again_is_one_trial_costing_both_trainings(
    tmp_path: Path,
) -> None:
    """Two trainings of one model under DDP (two Trainers) and one of another: two trials.
    The second training's node run is the model's trial, the first's node run its part
    (``contained`` false: it ran before, added once); each training's rank 1 run a part of
    its own training's node run with no energy of its own; the other model's training a
    trial of its own. The price tag's total is the sum of every row's measured energy, and
    the model's trial costs both node runs. Before: three trials, the fine-tuned model's at
    a fraction of what training it cost."""
    need_installed("transformers", "transformers")
    here = Path(__file__).resolve().parent
    script = (
        SCRIPT.replace("@TESTS@", repr(str(here.parent)))
        .replace("@INTEGRATIONS@", repr(str(here)))
        .replace("@WATTS@", repr(WATTS))
    )
    (tmp_path / "retrain.py").write_text(script, encoding="utf-8")
    env = {
        key: value
        for key, value in clean_env().items()
        if not key.startswith(("SLURM_", "TORCHELASTIC_"))
        and key not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    }
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    args = ["--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    args += ["--master-port", str(_free_port()), "retrain.py"]
    done = run_torchrun(tmp_path, args, env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = gp.Ledger(tmp_path / "gp.db").runs(study="retrain")
    by_name = runs_by_name(runs)
    assert {name: len(each) for name, each in by_name.items()} == {
        "tune": 2,
        "tune-rank1": 2,
        "other": 1,
        "other-rank1": 1,
    }
    assert all(r.status == "finished" for r in runs)
    first, last = by_name["tune"]
    assert (last.role, last.parent_id) == (None, None)
    assert (first.role, first.parent_id, first.contained) == ("part", last.id, False)
    (other,) = by_name["other"]
    assert (other.role, other.parent_id) == (None, None)
    # each training's rank 1 is a part of that training's node run, metered by it alone
    ranks = [*by_name["tune-rank1"], *by_name["other-rank1"]]
    assert_ranks_are_parts_of_their_nodes([first, last, other], ranks, WATTS)
    assert_two_trials_the_stages_one(runs, last)  # was one trial a stage
