"""The public surface: exports, a light `import greenprint`, the exception tree, the CLI."""

import json
import subprocess
import sys
import types

import pytest

import greenprint as gp
from greenprint.cli import COMMANDS, main


def test_all_is_sorted_and_every_name_resolves():
    assert gp.__all__ == sorted(gp.__all__)
    assert not [name for name in gp.__all__ if name.startswith("_") and name != "__version__"]
    for name in gp.__all__:
        if name in ("count_fpo", "training_fpo", "FPOCounter", "FPOResult"):
            pytest.importorskip("torch")
        assert getattr(gp, name) is not None


def test_every_public_greenprint_object_in_the_namespace_is_exported():
    defined = {
        name
        for name, value in vars(gp).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("greenprint")
    }
    assert defined <= set(gp.__all__)


def test_import_greenprint_is_light():
    code = (
        "import json, sys; import greenprint, greenprint.cli;"
        "heavy = ['torch', 'sqlalchemy', 'matplotlib', 'rich', 'pynvml', 'numpy', 'psutil'];"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_exception_derives_from_the_root():
    for name in gp.__all__:
        obj = getattr(gp, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, gp.GreenprintError), name


def test_every_cli_command_is_built_and_has_help(capsys):
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert "Usage:" in capsys.readouterr().out


def test_unknown_command_and_option_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["hardware", "--no-such-option"]) == 2


def test_version():
    out = subprocess.run(
        [sys.executable, "-m", "greenprint", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and gp.__version__ in out.stdout
