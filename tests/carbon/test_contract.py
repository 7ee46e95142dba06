"""greenprint.carbon offers the names DESIGN.md promises."""

from __future__ import annotations

import greenprint.carbon as carbon


def test_contract_names_exist():
    for name in (
        "Intensity",
        "PUE",
        "resolve_intensity",
        "resolve_pue",
        "lookup_region",
        "load_intensity_csv",
        "regions",
        "PUE_PRESETS",
    ):
        assert name in carbon.__all__
