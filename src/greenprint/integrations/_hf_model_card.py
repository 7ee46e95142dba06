"""The ``co2_eq_emissions`` block of a Hugging Face model card, from a run.

:func:`model_card_co2` and :func:`add_co2_to_model_card`, re-exported by
:mod:`greenprint.integrations.transformers` (their public home); emissions in grams, as the
Hub's metadata wants.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._imports import require
from greenprint._units import kg_to_g

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.tracking import Run


_PURPOSE = "greenprint.integrations.transformers"

#: Fields of the co2_eq_emissions block that a caller may give.
_CO2_FIELDS = ("training_type", "geographical_location", "hardware_used")


def model_card_co2(
    run: Run | RunRecord,
    *,
    training_type: str | None = None,
    geographical_location: str | None = None,
    hardware_used: str | None = None,
) -> dict[str, Any]:
    """The ``co2_eq_emissions`` block of a Hugging Face model card for ``run``.

    Args:
        run: a finished :class:`~greenprint.Run` or a :class:`~greenprint.RunRecord`.
        training_type: ``"pre-training"`` or ``"fine-tuning"``, when you say so.
        geographical_location: where it ran (default: the grid region of the run's
            intensity, ``"DE"``, as a report's model card gives it; ``"unknown (no region set:
            world-average grid intensity)"`` for the world average).
        hardware_used: what it ran on (default: from the run's hardware record).

    Returns:
        ``{"emissions": grams CO2-eq, "source": "greenprint ...", ...}``; emissions in grams,
        as the Hub's metadata wants, rounded to 6 significant digits; ``None`` for a run
        with no energy meter (``meters=[]``), whose source says so.

    Raises:
        ConfigError: ``run`` is neither a run nor a run record.
    """
    from greenprint._records import RunRecord
    from greenprint.tracking import Run

    if isinstance(run, Run):
        record = run.record
    elif isinstance(run, RunRecord):
        record = run
    else:
        raise ConfigError(f"model_card_co2 needs a Run or RunRecord, not {type(run).__name__}")
    block: dict[str, Any] = {
        "emissions": None,  # a run with no energy meter (meters=[]): unknown, never 0 g
        "source": f"greenprint {record.greenprint_version}, run {record.id}",
    }
    if record.energy_recorded:
        block["emissions"] = float(f"{kg_to_g(record.emissions_kg or 0.0):.6g}")
    else:
        block["source"] += " (no energy meter: its energy and CO2-eq are unknown)"
    if training_type is not None:
        block["training_type"] = training_type
    # the grid region of the intensity ("DE"), as the report's model card says it: the source
    # ("table:DE:2023", "default:world:2023" for no region at all) is not a place
    location = geographical_location
    if location is None and record.intensity_source:
        from greenprint.report._text import location_of

        location = location_of([record.intensity_source])
    if location:
        block["geographical_location"] = location
    hardware = hardware_used or _hardware_text(record)
    if hardware:
        block["hardware_used"] = hardware
    return block


def add_co2_to_model_card(
    path: str | os.PathLike[str], run: Run | RunRecord, **fields: Any
) -> None:
    """Write ``run``'s ``co2_eq_emissions`` block into the model card (README.md) at ``path``.

    The card's other metadata and text are kept; an existing block is replaced.

    Args:
        path: the model card file (``<output_dir>/README.md``); it must exist.
        run: the run that trained the model.
        **fields: ``training_type``, ``geographical_location``, ``hardware_used``, as for
            :func:`model_card_co2`.

    Raises:
        ConfigError: no file at ``path``, or a bad ``run``.
    """
    hub = require("huggingface_hub", extra="transformers", purpose=_PURPOSE)
    if not os.path.isfile(path):
        raise ConfigError(f"no model card at {os.fspath(path)!r}; create it first")
    block = model_card_co2(run, **fields)
    card = hub.ModelCard.load(path)
    card.data.co2_eq_emissions = block
    card.save(path)


def _hardware_text(record: RunRecord) -> str:
    """What ``record`` ran on, as a report's hardware line and model card say it.

    ``"AMD EPYC 7B13 (2 logical CPUs, 8 GB RAM), no GPU"``, ``"... (64 logical CPUs, 512 GB
    RAM), 8 x NVIDIA H100 80GB HBM3"``: how much compute and what kind, as the Hub's
    ``hardware_used`` asks ("e.g. 8 v100 GPUs", free text); it read only the CPU's name. A
    record with no CPU model (a hand-made one) gives what it has.
    """
    hardware: Mapping[str, Any] | None = record.hardware
    if not hardware:
        return ""
    if hardware.get("cpu_model"):
        from greenprint.report._text import hardware_descriptions

        return hardware_descriptions([record])[0]
    parts = []
    cpu = hardware.get("cpu_model") or hardware.get("cpu")
    if isinstance(cpu, str) and cpu:
        parts.append(cpu)
    gpus = hardware.get("gpus")
    if isinstance(gpus, (list, tuple)) and gpus:
        names = [g.get("name", "GPU") if isinstance(g, Mapping) else str(g) for g in gpus]
        parts.append(f"{len(names)} x {names[0]}")
    return ", ".join(parts)
