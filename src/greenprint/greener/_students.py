"""The variants that replace the compared model by a smaller one: distilled, or your own.

Split out of :mod:`greenprint.greener._variants` (the techniques applied to the model itself):
:func:`distilled` trains a smaller student on the model's outputs inside the comparison (its
training recorded as a run); :func:`smaller` measures a smaller architecture the user trained.
Each is a :class:`~greenprint.greener._variants.Variant` whose training runs are its extra cost.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from greenprint._format import count_of
from greenprint.greener._variants import (
    Applied,
    Context,
    Variant,
    _check_batches,
    _check_module,
    _check_name,
    training_costs,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["distilled", "smaller"]


def distilled(
    student: nn.Module,
    data: Iterable[Any],
    *,
    epochs: int = 1,
    name: str = "distilled",
    temperature: float = 2.0,
    alpha: float = 0.5,
    lr: float = 1e-3,
) -> Variant:
    """A smaller ``student`` distilled from the compared model (the teacher), then measured.

    The distillation (:func:`~greenprint.greener.distill`) runs inside the comparison and is
    recorded as a run (role ``greener``, step ``distill``): its energy is the variant's extra
    training cost, paid back after the break-even number of inferences.

    Args:
        student: the untrained (or pre-trained) smaller model; a copy is trained.
        data: batches of ``(inputs, targets)``, iterated once per epoch.
        epochs: passes over ``data``.
        name: the row's name.
        temperature: softening temperature of the teacher's and student's logits.
        alpha: weight of the distillation loss (``1 - alpha`` for the hard-label loss).
        lr: Adam's learning rate.

    Raises:
        ConfigError: ``student`` is not an ``nn.Module``, ``data`` is an empty list or tuple,
            or a bad option.
    """
    from greenprint.greener._distill import check_distill_options

    _check_module("student", student)
    _check_batches(data)
    check_distill_options(epochs=epochs, temperature=temperature, alpha=alpha, lr=lr)

    def apply(model: nn.Module, ctx: Context) -> Applied:
        from greenprint.greener._distill import distill

        result = distill(
            model,
            copy.deepcopy(student),
            data,
            epochs,
            temperature=temperature,
            alpha=alpha,
            lr=lr,
            name="distill",
            ledger=ctx.ledger,
            study=ctx.study,
            region=ctx.region,
            pue=ctx.pue,
        )
        if result.fpo is not None:
            # the count result when it is a lower bound or assumed something, else the int
            ctx.fpo.append(result.fpo if result.fpo_count is None else result.fpo_count)
        notes = (TEACHER_NOT_COUNTED,)
        return Applied(model=result.student.eval(), training=(result,), notes=notes)

    return Variant(
        _check_name(name),
        "distilled",
        f"student distilled from the model ({count_of(epochs, 'epoch')}, T={temperature:g}, "
        f"alpha={alpha:g})",
        apply,
    )


#: The note of a :func:`distilled` variant: its training is the distillation's, not the teacher's.
TEACHER_NOT_COUNTED = (
    "training: the distillation only; the teacher (the compared model) and its own training are "
    "needed too, and not in it (sunk for the break-even, as the baseline needs them too): the "
    "student's full price adds the teacher's training, in the study's price tag where it was "
    "tracked"
)


#: The note of a :func:`smaller` variant given no ``training``.
NO_TRAINING_GIVEN = (
    "its training was not given (smaller(..., training=[runs])): the training column and "
    "break-even count none of it"
)


def smaller(
    model: nn.Module,
    *,
    name: str = "smaller",
    training: Sequence[Any] = (),
    description: str = "a smaller architecture, trained by the user",
) -> Variant:
    """A smaller architecture you trained yourself, measured like the others.

    Args:
        model: the trained smaller model (a copy is measured).
        name: the row's name.
        training: the runs that trained it (:class:`~greenprint.Run`, run records, or
            :class:`~greenprint.greener.DistillResult`): their energy is its extra training
            cost for the break-even. Without them the row's notes say that its training is
            not counted.
        description: what it is, in words.

    Raises:
        ConfigError: ``model`` is not an ``nn.Module`` (a ``state_dict``...), or a
            ``training`` item has no energy.
    """
    _check_module("model", model)  # checked now, not halfway through a comparison
    training_costs(training)
    kept = tuple(training)
    own = model

    # no runs given: its training cost is unknown, not 0 (its row read training 0, paid back
    # after 0 inferences, without a word)
    notes = () if kept else (NO_TRAINING_GIVEN,)

    def apply(_: nn.Module, ctx: Context) -> Applied:
        return Applied(model=copy.deepcopy(own).eval(), training=kept, notes=notes)

    return Variant(_check_name(name), "smaller", description, apply)
