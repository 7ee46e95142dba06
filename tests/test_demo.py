"""`greenprint demo`: what it refuses before training anything, and its plain progress lines.

The demo itself runs once in the suite, as the README's quickstart runs it (24 trials, 15 epochs,
4 learning-curve fractions): tests/test_docs_examples.py runs that block and
``test_readme_demo_runs_the_whole_study`` checks its summary, ledger and report.
"""

import io

import pytest

import greenprint as gp
from greenprint.cli import main
from integrations._frameworks import need_installed

# the demo needs both: looked up, not imported (collection stays light); a skip, but a failure
# under CI=true (a broken environment)
need_installed("torch", "torch")
need_installed("sklearn", "demo")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--trials", "0", "Invalid value for '--trials': 0 is not in the range x>=1"),
        ("--epochs", "0", "Invalid value for '--epochs': 0 is not in the range x>=1"),
        ("--fractions", "0.5,x", "--fractions must be numbers separated by commas: '0.5,x'"),
    ],
)
def test_hidden_size_options_refuse_bad_values(tmp_path, capsys, option, value, message):
    """The hidden options that shrink the demo (--trials, --epochs, --fractions) are read, and a
    bad value is one error line and exit 2, before anything is trained or written."""
    out = tmp_path / "o"
    assert main(["demo", "--out", str(out), "--quiet", option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_demo_refuses_a_ledger_that_already_has_the_study(tmp_path, capsys):
    path = tmp_path / "l.db"
    led = gp.Ledger(path)
    led.start_run(gp.RunRecord(id="0123456789abcdef", name="old", study="digits-demo"))
    led.close()
    assert main(["demo", "--ledger", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a study 'digits-demo'" in err[0]
    assert [r.name for r in gp.Ledger(path, create=False).runs()] == ["old"]  # nothing lost


def test_plain_display_lines():
    from greenprint.demo._display import PlainDisplay

    stream = io.StringIO()
    show = PlainDisplay(stream)
    show.phase("random search", 12)
    show.status("ignored")
    show.done("trial-01 finished")
    show.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("random search (12)")
    assert lines[1].endswith(" 1/12 trial-01 finished")
