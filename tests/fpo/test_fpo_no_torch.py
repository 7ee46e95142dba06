"""Without torch: ``import greenprint`` works and the FPO API names the extra to install."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['torch'] = None; "


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_and_count_fpo_without_torch():
    done = python(
        BLOCK + "import greenprint as gp, greenprint.fpo, greenprint.fpo.rules\n"
        "assert len(greenprint.fpo.rules.RULES) > 400\n"
        "for name in ('count_fpo', 'FPOCounter', 'training_fpo', 'example_inputs'):\n"
        "    try:\n"
        "        getattr(gp if hasattr(gp, '__all__') and name in gp.__all__ else greenprint.fpo,"
        " name)\n"
        "    except gp.MissingDependencyError as e:\n"
        "        assert e.extra == 'torch' and \"greenprint[torch]\" in str(e), e\n"
        "    else:\n"
        "        raise SystemExit(f'{name} did not raise')\n"
        "print(gp.FPOResult.__name__)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FPOResult"  # the result type itself needs no torch


def test_importing_the_fpo_package_does_not_import_torch():
    done = python(
        "import sys; import greenprint.fpo, greenprint.fpo.rules; import greenprint as gp; "
        "gp.FPOResult; print('torch' in sys.modules)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_cli_without_torch_is_one_line_exit_2():
    done = python(
        BLOCK + "from greenprint.cli import main; "
        "sys.exit(main(['fpo', 'm:f', '--input-shape', '1,3']))"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "greenprint: error: greenprint fpo needs torch, which is not installed: "
        "pip install 'greenprint[torch]'"
    )
