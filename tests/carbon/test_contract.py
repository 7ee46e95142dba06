"""greenprint.carbon exports exactly its public names, sorted, and imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import greenprint.carbon as carbon


def test_all_is_sorted_and_complete():
    assert carbon.__all__ == sorted(carbon.__all__)
    public = {
        name
        for name, value in vars(carbon).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations",)
    }
    assert public == set(carbon.__all__)
    for name in carbon.__all__:
        value = getattr(carbon, name)
        if callable(value):
            assert value.__module__.startswith("greenprint.carbon._"), name


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


def test_import_is_light():
    code = (
        "import json, sys; import greenprint.carbon;"
        "heavy = ['numpy', 'sqlalchemy', 'difflib', 'pycountry', 'codecarbon', 'rich'];"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
