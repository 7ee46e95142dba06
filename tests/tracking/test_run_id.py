"""Run ids: random version-4 UUIDs as 32 hex digits (made without importing uuid)."""

from __future__ import annotations

import uuid

from greenprint.tracking import _new_run_id


def test_run_ids_are_uuid4_hex_and_unique():
    ids = [_new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for run_id in ids[:200]:
        parsed = uuid.UUID(hex=run_id)
        assert parsed.hex == run_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
