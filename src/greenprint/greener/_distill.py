"""Knowledge distillation of a smaller student, recorded as a run with its cost.

The student learns from the teacher's softened outputs and the true labels (Hinton et al.,
2015): ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * cross_entropy(s, y)``.
The training is tracked (role ``greener``, parameter ``greener.step = "distill"``), so its
energy and CO2-eq are part of the study's price tag and the variant's break-even.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint.greener._counted import counted_as
from greenprint.greener._result import GREENER_ROLE, STEP_KEY

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from greenprint._types import LedgerLike

__all__ = ["DistillResult", "check_distill_options", "distill"]


@dataclass(frozen=True)
class DistillResult:
    """A trained student and what its training cost.

    Attributes:
        student: the trained student (eval mode).
        run_id: the run that recorded the training.
        energy_kwh: the training's energy, kWh.
        emissions_kg: its CO2-eq, kg.
        duration_s: its duration, s.
        fpo: FPO of the training: its first step counted as it ran, in two parts: the
            teacher forward, student forward and backward and the loss per example, times the
            examples seen; the optimizer step (once per batch, whatever its size) times the
            steps taken; ``None`` if it could not be counted.
        epochs: passes over the data.
        examples: training examples seen per epoch.
        losses: mean loss of each epoch.
        provenance: where the energy and CO2-eq came from (the run's provenance).
        fpo_count: ``fpo`` as the count result it was recorded with, when its counts ran ops
            with no rule or on complex tensors (a lower bound) or assumed something (an FFT
            library: :attr:`~greenprint.FPOResult.assumptions`); ``None`` when ``fpo`` is exact
            and assumed nothing, or was not counted.
    """

    student: Any
    run_id: str
    energy_kwh: float
    emissions_kg: float
    duration_s: float
    fpo: int | None
    epochs: int
    examples: int
    losses: tuple[float, ...]
    provenance: dict[str, str]
    fpo_count: Any = None


def check_distill_options(
    *, epochs: object, temperature: object, alpha: object, lr: object
) -> None:
    """Check distillation options.

    Raises:
        ConfigError: ``epochs`` not an integer >= 1, ``temperature`` or ``lr`` not a finite
            number > 0, ``alpha`` not in [0, 1].
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, not {epochs!r}")
    for label, value in (("temperature", temperature), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label} must be a number > 0, not {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{label} must be a finite number > 0, not {value!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be a number in [0, 1], not {alpha!r}")


def _split(batch: Any) -> tuple[tuple[Any, ...], Any]:
    import torch

    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ConfigError(
            "distill needs batches of (inputs, targets); got "
            f"{type(batch).__name__}{'' if not isinstance(batch, (tuple, list)) else len(batch)}"
        )
    inputs, targets = batch
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not all(isinstance(x, torch.Tensor) for x in inputs) or not isinstance(
        targets, torch.Tensor
    ):
        raise ConfigError("distill needs batches of (inputs, targets) tensors")
    return inputs, targets


def distill(
    teacher: nn.Module,
    student: nn.Module,
    data: Iterable[Any],
    epochs: int = 1,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    lr: float = 1e-3,
    optimizer: Any = None,
    name: str = "distill",
    study: str | None = None,
    ledger: LedgerLike = None,
    region: str | None = None,
    pue: float | str | None = None,
) -> DistillResult:
    """Train ``student`` on ``teacher``'s outputs and the labels; record the training as a run.

    Args:
        teacher: the trained model (run in eval mode, never updated; each of its modules is
            given back in the mode it was in).
        student: the smaller model, trained in place and returned in eval mode.
        data: batches of ``(inputs, targets)`` (a DataLoader, a list...), iterated once per
            epoch; ``inputs`` a tensor or a tuple of tensors, ``targets`` class indices.
        epochs: passes over ``data``.
        temperature: softening temperature ``T`` of both models' logits.
        alpha: weight of the distillation term; ``1 - alpha`` weighs the hard-label loss.
        lr: learning rate of the default optimizer (Adam).
        optimizer: a ready ``torch.optim`` optimizer over the student's parameters (wins over
            ``lr``).
        name: the run's name.
        study: the run's study (default as :func:`greenprint.track`).
        ledger: where the run is recorded (as :func:`greenprint.track`; ``False``: in memory).
        region: grid region for CO2-eq (as :func:`greenprint.track`).
        pue: PUE (as :func:`greenprint.track`).

    Returns:
        The trained student and the training's cost (:class:`DistillResult`).

    Raises:
        ConfigError: a bad option, a model that is not an ``nn.Module``, data that is empty or
            not made of ``(inputs, targets)`` tensor pairs.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    import greenprint as gp
    from greenprint.fpo import FPOCounter
    from greenprint.fpo._no_dynamo import no_dynamo_import, plain_step

    for label, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{label} must be a torch.nn.Module, not {type(model).__name__}")
    check_distill_options(epochs=epochs, temperature=temperature, alpha=alpha, lr=lr)
    batches: Iterable[Any] = data
    if isinstance(data, Iterator):  # a generator: kept for the next epochs
        batches = list(data)
    with no_dynamo_import():  # Adam's __init__ imported torch._dynamo: 1.1 s of CPU
        opt = optimizer if optimizer is not None else torch.optim.Adam(student.parameters(), lr=lr)
    if optimizer is None:  # its step too (every call); the user's own optimizer is left alone
        plain_step(opt)
    t = float(temperature)
    params = {
        STEP_KEY: "distill",
        "epochs": epochs,
        "temperature": t,
        "alpha": float(alpha),
        "lr": float(lr) if optimizer is None else None,
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "student_params": sum(p.numel() for p in student.parameters()),
    }
    # the teacher's own modes, each module's, given back after (it is the user's model)
    teacher_modes = [(m, m.training) for m in teacher.modules()]
    teacher.eval()
    losses: list[float] = []
    examples = 0
    all_examples = steps = 0  # over every epoch
    fpo_per_example: float | None = None
    fpo_per_step = 0.0
    counts: list[Any] = []  # one step's count results (the ops they could not count in full)
    try:
        with (
            gp.track(
                name, study=study, ledger=ledger, region=region, pue=pue, params=params,
                role=GREENER_ROLE,
            ) as run,
            no_dynamo_import(),  # zero_grad's wrapper imported it at the first uncounted step
        ):  # fmt: skip
            for epoch in range(epochs):
                student.train()
                total, seen = 0.0, 0
                for batch in batches:
                    inputs, targets = _split(batch)
                    size = int(targets.shape[0]) if targets.dim() else 1

                    # the first step counted as it trains, in two parts: the forwards, loss and
                    # backward grow with the examples of a batch, the optimizer step does not
                    # (it updates every parameter once per batch): scaled by examples, it was
                    # counted 512 times for a first batch of 1 example and 512 after it
                    first = fpo_per_example is None
                    with FPOCounter(student) if first else nullcontext() as per_example:
                        with torch.no_grad():
                            soft = F.softmax(teacher(*inputs) / t, dim=-1)
                        logits = student(*inputs)
                        kd = F.kl_div(
                            F.log_softmax(logits / t, dim=-1), soft, reduction="batchmean"
                        )
                        loss = float(alpha) * t * t * kd + (1 - float(alpha)) * F.cross_entropy(
                            logits, targets
                        )
                        opt.zero_grad()
                        loss.backward()
                    with FPOCounter(student) if first else nullcontext() as per_step:
                        opt.step()
                    if isinstance(per_example, FPOCounter) and isinstance(per_step, FPOCounter):
                        counts += [per_example.result, per_step.result]
                        fpo_per_example = per_example.total / max(size, 1)
                        fpo_per_step = float(per_step.total)
                    total += float(loss.detach()) * size
                    seen += size
                    steps += 1
                if seen == 0:
                    raise ConfigError("distill got no batches: data is empty")
                if epoch == 0:
                    examples = seen
                all_examples += seen
                losses.append(total / seen)
                run.log(distill_loss=losses[-1], step=epoch + 1)
            fpo = fpo_count = None
            if fpo_per_example is not None:
                fpo = int(round(fpo_per_example * all_examples + fpo_per_step * steps))
                recorded = counted_as(fpo, counts)
                run.add_fpo(recorded)  # a lower bound, said so, when it is one
                fpo_count = None if isinstance(recorded, int) else recorded
            run.set(dataset_size=examples)
    finally:
        for module, mode in teacher_modes:
            module.train(mode)
    student.eval()
    return DistillResult(
        student=student,
        run_id=run.id,
        energy_kwh=run.energy_kwh,
        emissions_kg=run.emissions_kg,
        duration_s=run.duration_s,
        fpo=fpo,
        epochs=epochs,
        examples=examples,
        losses=tuple(losses),
        provenance=dict(run.provenance),
        fpo_count=fpo_count,
    )
