"""The report format registry is what the CLI offers."""

import subprocess
import sys

import greenprint.report


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
