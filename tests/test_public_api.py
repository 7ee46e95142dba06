"""The public surface: exports, a light `import greenprint`, the exception tree, the CLI."""

import json
import subprocess
import sys

import greenprint as gp
from greenprint.cli import COMMANDS, main

# gp.__all__ (sorted, exactly the public names, public homes) is checked with every other
# public package's in tests/test_exports.py


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
