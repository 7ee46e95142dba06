"""An int8 variant's executed FPO are what its int8 model runs in floating point, by hand.

Before session 28, ``greener.compare`` derived an int8 variant's executed FPO from its float
twin's: the twin's FPO less the int8 layers' products. On docs/greener.md's MLP (16 -> 64, ReLU,
-> 2; a batch of 64) the dynamic-int8 row read 130 FPO per inference (the twin's 66 bias
additions and 64 ReLUs), and so would static int8, while what the int8 models run was not
counted: quantizing the activations (6 FPO per input element of a dynamic int8 linear, 3 for
``quantize_per_tensor``), the int8 kernels' float rescaling, bias and requantization, and the
dequantize step. They are 676.75 (dynamic) and 316.08 (static, x86 engine) FPO per inference.

Each kernel is emulated here step by step in PyTorch, its integer GEMM outside the counter and its
float steps inside: the emulation gives the kernel's output (exactly, for static int8), and the
counter counts on its float steps what the rule returns. The counts follow FBGEMM's kernels, which
the x86 and fbgemm quantized engines run.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import greenprint as gp  # noqa: E402
from greenprint import greener  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402
from greenprint.greener._variants import Context, quiet_torch_ao  # noqa: E402

M = 64  # the batch
DYNAMIC_PER_CALL = 24  # ChooseQuantizationParams (22), 1 / scale, act_scale * w_scale: scalars


pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the counts follow FBGEMM's kernels


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    ).eval()


def _dynamic_by_hand(m: int) -> int:
    """Dynamic int8 MLP, one batch of ``m``: per linear 6 per input element, 2 per output
    element (times the scale, + bias), 24 per call; the ReLU between them 1 per element."""
    first = 6 * m * 16 + 2 * m * 64 + DYNAMIC_PER_CALL
    second = 6 * m * 64 + 2 * m * 2 + DYNAMIC_PER_CALL
    return first + m * 64 + second


def _static_by_hand(m: int) -> int:
    """Static int8 MLP (x86: per-channel weights), one batch of ``m``: quantize 3 per element
    + 1; each linear 4 per output element (bias scaled and added, times the multiplier, rounded)
    + 2 per output channel; the fused ReLU clamps integers; dequantize 1 per element."""
    quantize = 3 * m * 16 + 1
    first = 4 * m * 64 + 2 * 64
    second = 4 * m * 2 + 2 * 2
    return quantize + first + second + m * 2


def _choose_qparams(lo: float, hi: float, qmin: int = 0, qmax: int = 127) -> tuple[float, int]:
    """ATen's ChooseQuantizationParams (reduce_range: uint8 in [0, 127]), scalars in Python."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(torch.tensor((hi - lo) / (qmax - qmin), dtype=torch.float32))
    from_min, from_max = qmin - lo / scale, qmax - hi / scale
    use_min = abs(qmin) - abs(lo / scale) < abs(qmax) - abs(hi / scale)
    zero = from_min if use_min else from_max
    return scale, int(qmin if zero < qmin else qmax if zero > qmax else round(zero))


def test_dynamic_int8_linear_runs_6_fpo_per_input_and_2_per_output_element():
    linear = _mlp()[0]
    with quiet_torch_ao():
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear})[0]
    weight, bias = quantized._packed_params._packed_params.unpack()
    w_int = weight.int_repr().long() - weight.q_zero_point()
    x = torch.randn(M, 16)
    lo, hi = (float(v) for v in x.aminmax())
    scale, zero = _choose_qparams(lo, hi)
    multiplier = scale * weight.q_scale()

    def quantize_input(x):  # FindMinMax, then x * inv_scale + zero (FMA), clip, rounding
        x.aminmax()
        return (x * (1.0 / scale) + zero).clamp_max(2**31 - 128).round()

    def rescale(acc):  # per output element: the int32 sum converted, times the scale, + bias
        return acc.to(torch.float32) * multiplier + bias

    with torch.no_grad():
        quantize = gp.count_fpo(quantize_input, x, backward=False)
        x_int = quantize_input(x).long().clamp(0, 255) - zero  # integer from here
        acc = x_int @ w_int.T  # the int8 products: integer work, not counted
        output = rescale(acc)
        counted = gp.count_fpo(rescale, acc, backward=False)
        assert torch.allclose(output, quantized(x), rtol=0, atol=1e-5)  # the kernel's output
        kernel = gp.count_fpo(quantized, x, backward=False)  # the real kernel, its rule
    by_hand = 6 * M * 16 + 2 * M * 64 + DYNAMIC_PER_CALL
    assert quantize.total == 6 * M * 16 and counted.total == 2 * M * 64
    assert quantize.total + counted.total + DYNAMIC_PER_CALL == by_hand
    assert kernel.total == by_hand and kernel.unknown_ops == {}
    fn = RULES["quantized.linear_relu_dynamic"].fn  # a fused ReLU: + its max per output
    assert fn((M, 16), None, out_shape=(M, 64)) == by_hand + M * 64


def test_static_int8_requantization_reproduces_the_kernel_and_counts_4_per_output():
    model = _mlp()
    x = torch.randn(M, 16)
    context = Context(example_inputs=(x,), calibration=((x,),), track=lambda *a: None)
    static = greener.static_int8().apply(copy.deepcopy(model), context).model
    first, second = static.get_submodule("0"), static.get_submodule("2")
    x_scale = float(static.get_buffer("0_input_scale_0"))
    x_zero = int(static.get_buffer("0_input_zero_point_0"))

    def requantize(acc, act, module):
        # act_scale * w_scale and / out_scale per channel (2N); per output element the float
        # bias scaled (/) and added, times the multiplier, rounded: 4 per output element
        act_w = act * module._packed_params._packed_params.unpack()[0].q_per_channel_scales()
        multiplier = act_w.float() / module.scale
        bias = module._packed_params._packed_params.unpack()[1]
        return ((acc.float() + bias.expand_as(acc) / act_w.float()) * multiplier).round()

    def layer(q, module, relu):
        weight = module._packed_params._packed_params.unpack()[0]
        w_int = weight.int_repr().long() - weight.q_per_channel_zero_points()[:, None]
        acc = (q.int_repr().long() - q.q_zero_point()) @ w_int.T  # integer products
        act = torch.tensor(q.q_scale(), dtype=torch.float64)
        rounded = requantize(acc, act, module)
        count = gp.count_fpo(lambda a: requantize(a, act, module), acc, backward=False)
        low = module.zero_point if relu else 0  # the fused ReLU: a clamp of integers
        return (rounded.long() + module.zero_point).clamp(low, 255), count.total

    with torch.no_grad():
        q = torch.quantize_per_tensor(x, x_scale, x_zero, torch.quint8)
        quantized = static.get_submodule("0")(q)
        mine, first_fpo = layer(q, first, relu=True)
        assert torch.equal(mine, quantized.int_repr().long())  # exactly the kernel's output
        out = second(quantized)
        mine, second_fpo = layer(quantized, second, relu=False)
        assert torch.equal(mine, out.int_repr().long())
        # quantize: x * inv_scale, the clip, the rounding; the zero point on integers
        emulated = (x * (1.0 / x_scale)).clamp_max(2**31 - 128).round().long() + x_zero
        assert torch.equal(emulated.clamp(0, 255), q.int_repr().long())
        # dequantize: (q - zero) on integers, times the scale
        assert torch.equal((out.int_repr().long() - out.q_zero_point()) * out.q_scale(),
                           out.dequantize().double())  # fmt: skip
    assert first_fpo == 4 * M * 64 + 2 * 64 and second_fpo == 4 * M * 2 + 2 * 2
    linear_relu = RULES["quantized.linear_relu"]
    assert linear_relu.fn(None, None, out_shape=(M, 64)) == first_fpo  # per channel, a bias
    assert RULES["quantized.linear"].fn(None, None, out_shape=(M, 2)) == second_fpo
    assert RULES["aten.quantize_per_tensor"].fn((M, 16), x_scale) == 3 * M * 16 + 1
    assert RULES["aten.dequantize"].fn((M, 2), out_shape=(M, 2)) == M * 2
    assert first_fpo + second_fpo + 3 * M * 16 + 1 + M * 2 == _static_by_hand(M)


def test_the_docs_mlps_int8_rows_read_what_the_int8_models_run(tmp_path):
    model = _mlp()
    x = torch.randn(M, 16)

    def evaluate(m):  # one batch through the variant's model
        m(x)
        return 0.5

    result = greener.compare(
        model, evaluate, x, [greener.dynamic_int8(), greener.static_int8()],
        ledger=tmp_path / "int8.db", study="int8", min_time_s=0, min_batches=1,
        warmup_batches=0,
    )  # fmt: skip
    dense = 2 * 16 * 64 + 64 + 64 + 2 * 64 * 2 + 2  # per inference: 2,434 float FPO
    products = 2 * 16 * 64 + 2 * 64 * 2  # the int8 layers' products: integer operations
    dynamic, static = result.row("dynamic-int8"), result.row("static-int8")
    assert result.row("baseline").fpo_executed == dense
    assert (dynamic.fpo_dense, dynamic.int_ops) == (dense, products)
    assert dynamic.fpo_executed == _dynamic_by_hand(M) / M == 676.75  # 130 before
    assert (static.fpo_dense, static.int_ops) == (dense, products)
    assert static.fpo_executed == _static_by_hand(M) / M  # 316.08; 130 before
    for row in (dynamic, static):
        assert "counted on the int8 model as it runs" in row.fpo_note, row.name
        assert "no FPO rule" not in " ".join(result.notes)
    # each variant's run: its evaluation (one batch), the twin's and the int8 model's counted
    # forwards, the checked and the timed batches; the evaluation's count of the static model
    # has its kernels' requantization (it read 3,201 FPO, quantize and dequantize only, where
    # the row's count read 20,229)
    with gp.Ledger(tmp_path / "int8.db") as ledger:
        runs = {r.name.rsplit(":", 1)[-1]: r for r in ledger.runs(study="int8")}
    notes = " ".join(result.notes)
    for row, by_hand in ((dynamic, _dynamic_by_hand(M)), (static, _static_by_hand(M))):
        timed = row.measured_inferences // M
        run = runs[row.name]
        assert run.fpo == by_hand + dense * M + by_hand * (1 + 1 + timed), row.name
        assert "fpo_lower_bound" not in run.provenance
    assert "static-int8: the evaluation's FPO count its int8 model's float steps" in notes
    assert "not FPO: quantized.linear, quantized.linear_relu" in notes
    assert "not FPO: quantized.linear_dynamic" in notes
