"""The public surface of greenprint.report and greenprint.demo, and light imports."""

import json
import subprocess
import sys

import greenprint.demo
import greenprint.report


def test_all_is_sorted_and_resolves():
    for module in (greenprint.report, greenprint.demo):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_importing_report_and_the_cli_commands_loads_no_plotting_or_torch():
    code = (
        "import json, sys; import greenprint.report, greenprint.demo, greenprint.cli._report,"
        " greenprint.cli._demo;"
        "heavy = ('matplotlib', 'torch', 'rich', 'sklearn');"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_format_registry_is_the_cli_help():
    from greenprint.cli import main

    names = list(greenprint.report.FORMATS)
    assert names == ["html", "md", "latex", "json"]
    help_text = subprocess.run(
        [sys.executable, "-m", "greenprint", "report", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(name in help_text for name in names)
    assert main(["demo", "--help"]) == 0
