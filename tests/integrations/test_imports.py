"""Integrations are imported only when asked for, and a missing framework names its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = {
    "greenprint.integrations.optuna": ("optuna", "optuna"),
    "greenprint.integrations.sklearn": ("sklearn", "sklearn"),
    "greenprint.integrations.notebook": ("IPython", "notebook"),
    "greenprint.integrations.mlflow": ("mlflow", "mlflow"),
    "greenprint.integrations.wandb": ("wandb", "wandb"),
    "greenprint.integrations.tensorboard": ("tensorboard", "tensorboard"),
    "greenprint.integrations.ray": ("ray", "ray"),
}


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_greenprint_imports_no_integration_nor_framework() -> None:
    done = _python(
        "import sys, greenprint, greenprint.integrations\n"
        "import greenprint as gp\n"
        "with gp.track('x', ledger=False): pass\n"
        "loaded = [m for m in sys.modules if m.startswith('greenprint.integrations.')\n"
        "          or m.split('.')[0] in ('optuna', 'IPython', 'mlflow', 'wandb', 'tensorboard',\n"
        "                                      'ray')]\n"
        "print(loaded)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_missing_framework_names_the_extra(module: str) -> None:
    framework, extra = MODULES[module]
    done = _python(
        f"import sys\nsys.modules[{framework!r}] = None\n"
        "from greenprint import MissingDependencyError\n"
        f"try:\n    import {module}\n"
        "except MissingDependencyError as e:\n    print('E', e)\n"
        "except ImportError as e:\n    print('plain ImportError', e)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("E "), done.stdout
    assert f"pip install 'greenprint[{extra}]'" in done.stdout


PUBLIC_INTEGRATIONS = [
    *MODULES,
    "greenprint.integrations.lightning",
    "greenprint.integrations.transformers",
]


@pytest.mark.parametrize("module", sorted(PUBLIC_INTEGRATIONS))
def test_every_integration_export_reads_as_its_public_modules(module: str) -> None:
    """A function or class an integration exports reads as the module it is imported from
    (``help()``, reprs, pickles), wherever it is defined: transformers' ``model_card_co2`` read
    ``greenprint.integrations._hf_model_card`` once the module was split."""
    import importlib

    from conftest import require  # tests/conftest.py
    from greenprint._imports import is_available

    framework = MODULES.get(module, ("lightning" if "lightning" in module else "transformers",))
    require(is_available(framework[0]), f"{framework[0]} is not installed")
    mod = importlib.import_module(module)
    for name in mod.__all__:
        value = getattr(mod, name)
        if callable(value) and hasattr(value, "__module__"):
            assert value.__module__ == module, f"{module}.{name}: {value.__module__}"
