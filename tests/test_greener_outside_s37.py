"""greener on a stranger's own models: every figure against a hand count (session 37).

An MLP 64 -> 128 -> ReLU -> 10 (the shape of scikit-learn's digits) and a small CNN, compared
as docs/greener.md shows; FPO, nonzero parameters, int8 ops, CO2-eq and break-even recomputed
from first principles, and what the plain table (``print(result)``, the CLI's stdout) says of
the pruned rows' FPO.
"""

from __future__ import annotations

import math

import pytest

from greenprint import ConfigError, greener

torch = pytest.importorskip("torch")
nn = torch.nn

BATCH = 64


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


class _CNN(nn.Module):
    """conv 1->8 (3x3, pad 1) on 8x8, ReLU, max-pool 2, conv 8->16 (3x3) -> 2x2, ReLU, fc 64->10."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.c1(x.view(-1, 1, 8, 8))), 2)
        return self.fc(torch.relu(self.c2(x)).flatten(1))


def _x() -> torch.Tensor:
    return torch.rand(BATCH, 64, generator=torch.Generator().manual_seed(1))


def test_mlp_figures_match_a_hand_count():
    x = _x()
    y = torch.arange(BATCH) % 10
    data = [(x, y)]

    def accuracy(m):
        with torch.inference_mode():
            return (m(x).argmax(1) == y).float().mean().item()

    student = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    result = greener.compare(
        _mlp(),
        accuracy,
        x,
        [
            greener.dynamic_int8(),
            greener.prune_unstructured(0.5),
            greener.prune_structured(0.3),
            greener.half_precision("bfloat16"),
            greener.distilled(student, data, epochs=2),
        ],
        ledger=False,
        min_time_s=0.01,
        num_threads=1,
    )
    rows = {r.name: r for r in result.rows}
    assert all(r.measured for r in rows.values()), [r.reason for r in rows.values()]
    # dense, per inference: 2*64*128 products + 128 biases, 128 ReLUs, 2*128*10 + 10
    dense = 2 * 64 * 128 + 128 + 128 + 2 * 128 * 10 + 10
    assert dense == 19_210
    assert {r.fpo_dense for n, r in rows.items() if n != "distilled"} == {dense}
    assert rows["bf16"].fpo_executed == dense  # the same FPO at a lower precision
    assert rows["distilled"].fpo_dense == 2 * 64 * 16 + 16 + 16 + 2 * 16 * 10 + 10  # 2,410
    # unstructured 50%: half of each weight matrix is zero; a sparse kernel skips its products
    pruned = rows["prune-50%"]
    assert pruned.nonzero_param_count == 64 * 128 // 2 + 128 * 10 // 2 + 128 + 10  # 4,874
    assert pruned.fpo_executed == 2 * (64 * 128 // 2) + 128 + 128 + 2 * (128 * 10 // 2) + 10
    # 30% of the first layer's 128 output channels (38) zeroed; the last layer is kept
    kept = 128 - round(0.3 * 128)
    channels = rows["prune-ch-30%"]
    assert channels.nonzero_param_count == kept * 64 + 128 + 128 * 10 + 10  # 7,178
    assert channels.fpo_executed == 2 * kept * 64 + 128 + 128 + 2 * 128 * 10 + 10  # 14,346
    # dynamic int8: the products are integer ops (2 per multiply-add), not FPO; the float
    # steps are quantizing each layer's input (6 per element), scaling and bias (2 per output)
    int8 = rows["dynamic-int8"]
    assert int8.int_ops == 2 * (64 * 128 + 128 * 10)  # 18,944
    float_steps = 6 * 64 + 2 * 128 + 128 + 6 * 128 + 2 * 10  # 1,556
    assert float_steps <= int8.fpo_executed < float_steps + 1  # + a few FPO per batch
    # CO2-eq = energy x intensity, per 1,000 inferences as per training
    for r in rows.values():
        assert r.energy_kwh_per_1000 > 0
        intensity = r.emissions_kg_per_1000 / r.energy_kwh_per_1000
        assert intensity == pytest.approx(
            rows["baseline"].emissions_kg_per_1000 / rows["baseline"].energy_kwh_per_1000
        )
    # break-even = training kWh / (baseline kWh - variant kWh) per inference, else never;
    # none within twice the baseline's two loops' distance (its noise)
    base = rows["baseline"].energy_kwh_per_1000 / 1000
    noise = 2 * result.noise_fraction * base
    for r in rows.values():
        if r.name == "baseline":
            continue
        saving = base - r.energy_kwh_per_1000 / 1000
        assert r.within_noise is (abs(saving) <= noise), r.name
        if r.within_noise:
            assert r.break_even_inferences is None
        elif saving <= 0:
            assert r.break_even_inferences is None
        else:
            assert r.break_even_inferences == pytest.approx(r.training_energy_kwh / saving)
    assert rows["distilled"].training_energy_kwh > 0
    # the plain table says the pruned rows' FPO executed assume a sparse kernel, with figures
    lines = result.table().splitlines()
    said = {line.split(":")[0]: line for line in lines if line.startswith("- ")}
    assert said["- prune-50%"].startswith(
        "- prune-50%: FPO executed (9.74 kFPO) assume a sparse kernel that skips the zero "
        "weights; the dense kernels timed here run all 19.2 kFPO (FPO dense)"
    )
    assert "(14.3 kFPO) assume a sparse kernel" in said["- prune-ch-30%"]
    # an MLP has no convolution: its dynamic int8 row does not say they stay float
    assert "- dynamic-int8" not in said or "convolution" not in said["- dynamic-int8"]
    assert "- baseline" not in said
    assert "sparse" not in said.get("- bf16", "")  # its own note only: the same FPO


def test_cnn_convolutions_counted_and_named():
    x = _x()
    torch.manual_seed(0)
    result = greener.compare(
        _CNN().eval(),
        None,
        x,
        [greener.dynamic_int8(), greener.prune_unstructured(0.5)],
        ledger=False,
        min_time_s=0.01,
        num_threads=1,
    )
    rows = {r.name: r for r in result.rows}
    c1 = 2 * 9 * (8 * 8 * 8) + 8 * 8 * 8  # 9 multiply-adds per output, + bias: 9,728
    c2 = 2 * 72 * (16 * 2 * 2) + 16 * 2 * 2  # 72 per output: 9,280
    fc = 2 * 64 * 10 + 10
    relus = 8 * 8 * 8 + 16 * 2 * 2
    pool = 8 * 8 * 8  # one per input element of the 2x2 max-pool
    assert rows["baseline"].fpo_dense == c1 + c2 + fc + relus + pool == 21_386
    # half of each layer's products skipped by a sparse kernel
    assert rows["prune-50%"].fpo_executed == 21_386 - (c1 - 512 + c2 - 64 + fc - 10) / 2
    # dynamic int8 quantizes the linear layer only: its products are the int8 ops
    assert rows["dynamic-int8"].int_ops == 2 * 64 * 10
    assert "its 2 convolution(s) stay float" in " ".join(rows["dynamic-int8"].notes)
    assert "- dynamic-int8: its 2 convolution(s) stay float" in result.table()


@pytest.mark.parametrize("n", [0, -1, math.nan, "fro", "x", None, True])
def test_prune_structured_norm_refused_when_made(n):
    # torch took 'x' only once the baseline was measured (a skipped row: 'Order x not
    # supported'), and NaN, -1 or None without a word
    with pytest.raises(ConfigError, match=r"^n must be the order of the norm"):
        greener.prune_structured(0.3, n=n)


def test_prune_structured_norms_that_rank():
    assert greener.prune_structured(0.3, n=1).description.startswith("L1 pruning")
    assert greener.prune_structured(0.3, n=math.inf).description.startswith("Linf pruning")


def test_smaller_without_its_training_says_it_is_not_counted():
    # a smaller model the user trained, its runs not given: training read 0 and break-even 0
    # ("paid back from the first inference") without a word; its training is unknown
    tiny = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    x = _x()
    given = greener.distill(
        _mlp(),
        nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)),
        [(x, torch.arange(BATCH) % 10)],
        1,
        ledger=False,
    )
    result = greener.compare(
        _mlp(),
        None,
        x,
        [
            greener.smaller(tiny, name="tiny"),
            greener.smaller(given.student, name="kd", training=[given]),
        ],
        ledger=False,
        min_time_s=0.01,
        num_threads=1,
    )
    assert result.row("tiny").notes == (
        "its training was not given (smaller(..., training=[runs])): the training column and "
        "break-even count none of it",
    )
    assert "- tiny: its training was not given" in result.table()
    assert result.row("kd").notes == ()
    assert result.row("kd").training_energy_kwh == pytest.approx(given.energy_kwh)
