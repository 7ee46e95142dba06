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


def test_baselines_are_seeded_and_not_charged_the_fpo_counters_start(tmp_path, monkeypatch):
    """The logistic-regression baseline starts from the same weights on every run of a seed, and
    its run is not charged the FPO counter's start: the demo's first count (torch imports
    torch._dynamo then, ~1.7 s of CPU) was 95 % of that run (2 s for 15 epochs of 0.1 s)."""
    import torch

    import greenprint.demo._models as models
    from greenprint.demo._display import PlainDisplay
    from greenprint.demo._study import _baselines
    from greenprint.tracking import active_runs

    counted_in: list[list[str]] = []  # the runs open at each count of the baseline's FPO
    count = models.fpo_per_epoch

    def spy(model, params, data, **parts):
        counted_in.append([r.name for r in active_runs()])
        return count(model, params, data, **parts)

    monkeypatch.setattr(models, "fpo_per_epoch", spy)
    # digits-shaped data (8x8 images, 10 classes), no scikit-learn import for a split
    g = torch.Generator().manual_seed(0)
    data = models.Data(
        torch.rand(200, 64, generator=g),
        torch.randint(0, 10, (200,), generator=g),
        torch.rand(50, 64, generator=g),
        torch.randint(0, 10, (50,), generator=g),
    )
    losses = []
    for k in range(2):  # the same seed twice in one process: the same training
        led = gp.Ledger(tmp_path / f"l{k}.db")
        _baselines(led, "s", data, PlainDisplay(io.StringIO()), max_epochs=2, seed=0)
        (run,) = [r for r in led.runs(study="s") if r.name == "baseline-logreg"]
        losses.append([p.value for p in run.metrics if p.name == "train_loss"])
        led.close()
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    assert counted_in[0] == []  # counted before its run opened; train() then finds the count


def test_fpo_per_epoch_counts_each_step_once_and_stays_exact(monkeypatch):
    """An epoch's FPO is its steps' and its validation pass's, each counted once per model
    structure and shape: a learning curve's or the final retrain's data (another size) counts
    only its last, shorter batch again, and the totals are what counting the epoch gives."""
    import functools

    import torch

    import greenprint.demo._models as models
    import greenprint.fpo as fpo

    monkeypatch.setattr(models, "_FPO_COUNTS", {})
    g = torch.Generator().manual_seed(0)

    def data(n):
        return models.Data(
            torch.rand(n, 64, generator=g),
            torch.randint(0, 10, (n,), generator=g),
            torch.rand(30, 64, generator=g),
            torch.randint(0, 10, (30,), generator=g),
        )

    params = {"model": "cnn", "channels": 2, "batch": 32, "lr": 0.01, "wd": 1e-4}
    steps: list[int] = []  # the batch size of each training step counted
    count = fpo.training_fpo

    def spy(model, x, n, **kw):
        steps.append(int(x.shape[0]))
        return count(model, x, n, **kw)

    monkeypatch.setattr(fpo, "training_fpo", spy)

    def direct(model, d):  # the epoch counted as a whole: every step, then validation
        full, rest = divmod(d.n_train, 32)
        opt = functools.partial(torch.optim.Adam, lr=0.01, weight_decay=1e-4)
        loss = torch.nn.functional.cross_entropy
        total = count(
            model, d.x_train[:32], full, target=d.y_train[:32], loss_fn=loss, optimizer=opt
        ).total
        if rest:
            total += count(
                model, d.x_train[:rest], 1, target=d.y_train[:rest], loss_fn=loss, optimizer=opt
            ).total
        model.eval()
        with torch.no_grad():
            return total + fpo.count_fpo(model, d.x_val, backward=False).total

    search, curve = data(100), data(70)
    model = models.build_model(params)
    assert models.fpo_per_epoch(model, params, search) == direct(model, search)
    assert steps == [32, 4]
    other = models.build_model(params)  # another trial of the same architecture
    assert models.fpo_per_epoch(other, params, curve) == direct(other, curve)
    assert steps == [32, 4, 6]  # only the new last batch (70 = 2 x 32 + 6) was counted


def test_the_digits_are_scikit_learns_split_as_it_splits_them_without_importing_it(monkeypatch):
    """Importing scikit-learn imports scipy.stats and pandas (about 1.3 s of CPU of every demo)
    for the digits' data file and a stratified split: the demo reads the file and draws the
    split itself, with scikit-learn unimportable, and gets the rows of scikit-learn's
    ``train_test_split(..., stratify=y, random_state=seed)`` in its order (the figures as they
    were), for the demo's splits and for label counts whose remainders tie."""
    import sys

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from greenprint.demo import _digits
    from greenprint.demo._study import _load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    for seed in (0, 1, 7):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "sklearn", None)  # `import sklearn...` now fails
            data = _load_digits(seed)
        rest_x, test_x, rest_y, test_y = train_test_split(
            x, digits.target, test_size=0.2, stratify=digits.target, random_state=seed
        )
        parts = train_test_split(rest_x, rest_y, test_size=0.25, stratify=rest_y, random_state=seed)
        want = (parts[0], parts[2], parts[1], parts[3], test_x, test_y)
        got = (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
        assert all(np.array_equal(g.numpy(), w) for g, w in zip(got, want, strict=True)), seed
    rng = np.random.default_rng(0)
    for seed in range(20):  # other sizes: remainders tie, and the ties are drawn
        rows = rng.choice(len(x), size=int(rng.integers(60, 300)), replace=False)
        size = float(rng.uniform(0.15, 0.5))
        ours = _digits.train_test_split(x[rows], digits.target[rows], test_size=size, seed=seed)
        theirs = train_test_split(
            x[rows],
            digits.target[rows],
            test_size=size,
            stratify=digits.target[rows],
            random_state=seed,
        )
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)), seed


def test_the_final_model_is_scored_on_the_test_split_once_after_training(tmp_path):
    """The final retrain scored the held-out test split after each of its 15 epochs: its run
    held 15 test_accuracy points (min 0.9056, max 0.9889, last 0.9833 in ``ledger show``), the
    test split watched along the training as a validation split is. It is scored once now,
    after the last epoch (train_loss still every epoch), and the run's FPO holds that one
    pass: every epoch's steps and one pass over the test split, not 15."""
    import torch

    import greenprint.demo._models as models

    g = torch.Generator().manual_seed(0)
    data = models.Data(  # digits-shaped: 8x8 images, 10 classes
        torch.rand(100, 64, generator=g),
        torch.randint(0, 10, (100,), generator=g),
        torch.rand(30, 64, generator=g),
        torch.randint(0, 10, (30,), generator=g),
    )
    params = {"model": "cnn", "channels": 2, "batch": 32, "lr": 0.01, "wd": 0.0, "epochs": 3}
    with gp.track("final", study="s", ledger=tmp_path / "l.db", role="final") as run:
        model = models.build_model(params)
        outcome = models.train(
            model, params, data, run, seed=0, score_name="test_accuracy", score_each_epoch=False
        )
    points = [p for p in run.record.metrics if p.name == "test_accuracy"]
    assert [p.step for p in points] == [3] and outcome.scores == [points[0].value]
    assert [p.step for p in run.record.metrics if p.name == "train_loss"] == [1, 2, 3]
    assert outcome.epochs == 3 and not outcome.pruned
    steps = models.fpo_per_epoch(model, params, data, validation=False)
    scoring = models.fpo_per_epoch(model, params, data, steps=False)
    assert steps > 0 and scoring > 0
    assert models.fpo_per_epoch(model, params, data) == steps + scoring
    assert run.record.fpo == 3 * steps + scoring
