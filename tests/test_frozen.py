"""``slot_constructor`` makes the same frozen objects as the dataclass's own ``__init__``."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle

import pytest

import greenprint as gp
from greenprint._frozen import slot_constructor
from greenprint.report._model import RunRow


def _values(cls: type, seed: int) -> tuple:
    """One value per field, each different (NaN for a float where it can go)."""
    out = []
    for k, f in enumerate(dataclasses.fields(cls)):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, float) or f.name.endswith(("_kwh", "_kg", "_s", "_at")):
            out.append(math.nan if k % 7 == 0 else float(seed + k))
        elif f.name in ("params", "hardware", "env", "provenance"):
            out.append({"k": seed + k})
        elif f.name == "metrics":
            out.append((gp.MetricPoint("acc", 0.5, 1, 2.0),))
        else:
            out.append(f"{f.name}-{seed}" if not isinstance(default, bool) else bool(k % 2))
    return tuple(out)


@pytest.mark.parametrize("cls", [gp.RunRecord, gp.MetricPoint, gp.PowerSample, RunRow])
def test_same_object_as_the_dataclass_init(cls: type) -> None:
    make = slot_constructor(cls)
    for seed in range(3):
        values = _values(cls, seed)
        made, expected = make(*values), cls(*values)
        assert type(made) is cls
        assert repr(made) == repr(expected)
        fields = dataclasses.fields(cls)
        assert all(getattr(made, f.name) is v for f, v in zip(fields, values, strict=True))
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.__setattr__(dataclasses.fields(cls)[0].name, "changed")
    names = [f.name for f in dataclasses.fields(cls)]
    keywords = dict(zip(names, _values(cls, 9), strict=True))
    assert repr(make(**keywords)) == repr(cls(**keywords))  # keywords, in any order
    with pytest.raises(TypeError):
        make(*_values(cls, 0)[:-1])  # every field is given: no default filled in


def test_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(Base):  # its layout holds its base's slots too
        b: int

    for cls in (NoSlots, NotFrozen, Checked, Derived, Child, int):
        with pytest.raises(TypeError):
            slot_constructor(cls)


def test_made_objects_are_the_class_own() -> None:
    """Built as a plain twin with the same slots then given its class: nothing tells them apart."""
    make = slot_constructor(gp.MetricPoint)
    made, expected = make("loss", 0.25, 3, 1.5), gp.MetricPoint("loss", 0.25, 3, 1.5)
    assert made == expected and hash(made) == hash(expected)
    assert type(made) is gp.MetricPoint and isinstance(made, gp.MetricPoint)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.deepcopy(made) == expected
    assert dataclasses.replace(made, value=0.5) == gp.MetricPoint("loss", 0.5, 3, 1.5)
    assert dataclasses.asdict(made) == dataclasses.asdict(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.value = 1.0  # type: ignore[misc]
    for obj in (made, expected):  # no other attribute (the error is Python's own, per version)
        with pytest.raises((AttributeError, TypeError)):
            obj.other = 1  # type: ignore[attr-defined]
