"""A resolved ledger location: read-only, compared by value, password masked when shown."""

from __future__ import annotations

import pytest

from greenprint.ledger._target import Target, resolve_target


def test_targets_compare_by_value_and_are_read_only(tmp_path):
    a = resolve_target(tmp_path / "l.db")
    assert a == resolve_target(str(tmp_path / "l.db")) and hash(a) == hash(Target(*_fields(a)))
    assert a.backend == "sqlite" and a.path == tmp_path / "l.db" and not a.memory
    with pytest.raises(AttributeError):
        a.url = "sqlite://"  # type: ignore[misc]


def test_the_password_is_masked_when_shown():
    t = resolve_target("postgresql+psycopg://me:secret@db/gp")
    assert "secret" in t.url and "secret" not in repr(t)


def _fields(t: Target) -> tuple:
    return (t.backend, t.url, t.path)
