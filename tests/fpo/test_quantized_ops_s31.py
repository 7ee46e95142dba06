"""int8 counts (s31): the quantized namespace's max pooling, the qnnpack engine, legacy RNN cells.

- ``quantized::max_pool1d`` and ``quantized::max_pool2d`` (PT2E/inductor x86 graphs; the 2-D
  one also on plain ``uint8`` tensors) had no rule: unknown, a lower bound. They run the same
  kernels as ``aten.quantized_max_pool1d``/``2d``: integer compares, 0 FPO.
- Under the ``qnnpack`` quantized engine PyTorch runs other int8 kernels than the x86 ones the
  rules count, and the count said nothing: now ``assumptions["qnnpack_int8"]``.
- The legacy quantized RNN cells (``torch.quantized_lstm_cell``...) run two int8 linears each
  that call FBGEMM directly: invisible to the counter, a lower bound nothing flagged. They are
  now listed in ``unknown_ops``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from _int8 import q  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint import UnknownOpError  # noqa: E402
from greenprint._provenance import fpo_lower_bound  # noqa: E402

_LEGACY = "aten.fbgemm_linear_int8_weight_fp32_activation"


def _window_max(
    ints: torch.Tensor, kernel: list[int], stride: list[int], pad: list[int], dil: list[int]
) -> torch.Tensor:
    """Max pooling by brute force over the last ``len(kernel)`` dims of an integer tensor.

    Every window's taps inside the input, compared as integers (ATen's kernels skip the padding
    and the taps past the edge); ``ceil_mode`` False.
    """
    dims = len(kernel)
    sizes = ints.shape[-dims:]
    outs = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(sizes, kernel, stride, pad, dil, strict=True)
    ]
    lead = ints.shape[:-dims]
    flat = ints.reshape(-1, *sizes)
    result = torch.empty(flat.shape[0], *outs, dtype=ints.dtype)
    for index in torch.cartesian_prod(*[torch.arange(o) for o in outs]).reshape(-1, dims):
        taps = []
        for axis in range(dims):
            o = int(index[axis])
            taps.append(
                [
                    o * stride[axis] - pad[axis] + m * dil[axis]
                    for m in range(kernel[axis])
                    if 0 <= o * stride[axis] - pad[axis] + m * dil[axis] < sizes[axis]
                ]
            )
        window = flat[
            (slice(None), *torch.meshgrid(*[torch.tensor(t) for t in taps], indexing="ij"))
        ]
        result[(slice(None), *[int(i) for i in index])] = window.reshape(flat.shape[0], -1).amax(1)
    return result.reshape(*lead, *outs)


@pytest.mark.usefixtures("fbgemm_engine")
@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "pad", "dil", "channels_last"),
    [
        ((2, 3, 8, 8), [2, 2], [2, 2], [0, 0], [1, 1], False),
        ((2, 3, 9, 7), [3, 2], [2, 1], [1, 1], [1, 2], False),
        ((2, 4, 9, 7), [3, 3], [2, 2], [1, 0], [1, 1], True),
    ],
)
def test_quantized_max_pool2d_compares_integers_and_counts_zero(
    shape, kernel, stride, pad, dil, channels_last
):
    """Its output is the integer maximum of each window of the input's ``int_repr`` (brute
    force, integer compares only) with the input's scale and zero point: no float arithmetic,
    0 FPO, listed in ``by_op`` and not unknown (before: unknown, the count a lower bound)."""
    x = q(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def pool(t):
        return torch.ops.quantized.max_pool2d(t, kernel, stride, pad, dil, False)

    out = pool(x)
    assert torch.equal(out.int_repr(), _window_max(x.int_repr(), kernel, stride, pad, dil))
    assert (out.q_scale(), out.q_zero_point()) == (x.q_scale(), x.q_zero_point())
    counted = gp.count_fpo(pool, x, backward=False)
    assert counted.unknown_ops == {}
    assert counted.by_op == {"quantized.max_pool2d": 0}
    assert counted.total == 0


@pytest.mark.usefixtures("fbgemm_engine")
def test_quantized_max_pool1d_and_the_uint8_form_count_zero():
    """``quantized::max_pool1d`` on ``quint8`` (kernel 3, stride 2, padding 1) and
    ``quantized::max_pool2d`` on a plain channels-last ``uint8`` tensor (how PT2E's x86
    lowering calls it): the brute-force integer window maximum, 0 FPO, no unknown op."""
    x = q(2, 3, 11)

    def pool1d(t):
        return torch.ops.quantized.max_pool1d(t, [3], [2], [1], [1], False)

    assert torch.equal(pool1d(x).int_repr(), _window_max(x.int_repr(), [3], [2], [1], [1]))
    counted = gp.count_fpo(pool1d, x, backward=False)
    assert (counted.total, counted.unknown_ops) == (0, {})
    assert counted.by_op["quantized.max_pool1d"] == 0

    u8 = q(2, 4, 6, 6).int_repr().contiguous(memory_format=torch.channels_last)

    def pool2d(t):
        return torch.ops.quantized.max_pool2d(t, [2, 2], [2, 2], [0, 0], [1, 1], False)

    assert torch.equal(pool2d(u8), _window_max(u8, [2, 2], [2, 2], [0, 0], [1, 1]))
    counted = gp.count_fpo(pool2d, u8, backward=False)
    assert (counted.total, counted.unknown_ops) == (0, {})
    assert counted.by_op["quantized.max_pool2d"] == 0


@pytest.fixture
def engine() -> Iterator[None]:
    """Restores ``torch.backends.quantized.engine`` after the test; skips without qnnpack."""
    engines = torch.backends.quantized.supported_engines
    if "qnnpack" not in engines or not {"x86", "fbgemm"} & set(engines):
        pytest.skip(f"needs the qnnpack and an x86 engine; this build has {engines}")
    before = torch.backends.quantized.engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def _int8_model_count(engine_name: str) -> tuple[gp.FPOResult, gp.FPOResult]:
    """A static int8 linear (packed under ``engine_name``) then a sigmoid; and a float model."""
    import torch.ao.nn.quantized as nnq

    torch.backends.quantized.engine = engine_name
    torch.manual_seed(0)
    linear = nnq.Linear(8, 4)
    weight = torch.quantize_per_tensor(torch.randn(4, 8), 0.1, 0, torch.qint8)
    linear.set_weight_bias(weight, torch.randn(4))

    def model(t):
        return torch.sigmoid(linear(t))

    int8 = gp.count_fpo(model, q(3, 8), backward=False)
    floats = gp.count_fpo(torch.nn.Linear(8, 4), torch.randn(3, 8), backward=False)
    return int8, floats


@pytest.mark.usefixtures("engine")
def test_a_count_under_the_qnnpack_engine_says_it_counted_the_x86_kernels():
    """Under ``qnnpack`` the int8 ops are counted as the x86 kernels run them (the same total as
    the ``x86``/``fbgemm`` engine's, 4 per output element + 3 for the linear) and the result
    says so (``assumptions``, the table's INT8 line, ``to_dict``); under an x86 engine, or
    for a float model, or int8 ops of no float work (a ReLU on ``quint8``), nothing is said."""
    x86 = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    reference, floats = _int8_model_count(x86)
    assert "qnnpack_int8" not in reference.assumptions
    counted, floats_qnnpack = _int8_model_count("qnnpack")
    assert counted.total == reference.total
    assert counted.by_op["quantized.linear"] == 4 * 3 * 4 + 3
    assert counted.assumptions["qnnpack_int8"] == (
        "counted as the x86 kernels (FBGEMM's, ATen's) run them (QNNPACK's float work differs, "
        "not derived)"
    )
    assert counted.to_dict()["assumptions"]["qnnpack_int8"] == counted.assumptions["qnnpack_int8"]
    assert "INT8       int8 ops ran under the qnnpack engine" in counted.table()
    assert floats_qnnpack.assumptions == floats.assumptions == {}
    relu = gp.count_fpo(torch.relu, q(3, 8), backward=False)
    assert (relu.total, relu.assumptions) == (0, {})


def _pack(weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The legacy weights: int8 matrix, FBGEMM packed matrix, column offsets, scale, zp."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # deprecated (still in torch 2.13)
        qw, col_offsets, scale, zp = torch.fbgemm_linear_quantize_weight(weight)
        return qw, torch.fbgemm_pack_quantized_matrix(qw), col_offsets, scale, zp


@pytest.mark.usefixtures("fbgemm_engine")
@pytest.mark.parametrize(
    ("kind", "gates", "per_hidden"),
    [("lstm", 4, 22), ("gru", 3, 16), ("rnn_tanh", 1, 2), ("rnn_relu", 1, 2)],
)
def test_a_legacy_quantized_rnn_cell_lists_its_two_int8_linears_as_not_counted(
    kind, gates, per_hidden
):
    """A legacy cell's float steps are counted by their float rules (per hidden value LSTM 22,
    GRU 16, tanh or ReLU 2: its gates' sums and nonlinearities, 1 FPO per element each but a
    sigmoid 4, ATen's kernel; LSTM 13 and GRU 10 before s35), and its two
    int8 linears, which call FBGEMM directly, are listed in ``unknown_ops`` (before: nothing
    said it): the count is a lower bound, and the ledger's provenance says so."""
    torch.manual_seed(0)
    inputs, hidden, batch = 4, 3, 2
    ih, hh = _pack(torch.randn(gates * hidden, inputs)), _pack(torch.randn(gates * hidden, hidden))
    b_ih, b_hh = torch.randn(gates * hidden), torch.randn(gates * hidden)
    hx = torch.randn(batch, hidden)
    state = (hx, torch.randn(batch, hidden)) if kind == "lstm" else hx
    cell = getattr(torch, f"quantized_{kind}_cell")

    def step(x):
        return cell(
            x,
            state,
            ih[0],
            hh[0],
            b_ih,
            b_hh,
            ih[1],
            hh[1],
            ih[2],
            hh[2],
            ih[3],
            hh[3],
            ih[4],
            hh[4],
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        counted = gp.count_fpo(step, torch.randn(batch, inputs), backward=False)
        with pytest.raises(UnknownOpError, match="legacy int8 linear"):
            gp.count_fpo(step, torch.randn(batch, inputs), backward=False, strict=True)
    assert counted.total == per_hidden * batch * hidden
    assert counted.unknown_ops == {_LEGACY: 2}
    assert f"NO RULE    {_LEGACY} x2 (not counted)" in counted.table()
    assert fpo_lower_bound(counted.unknown_ops, counted.complex_ops) is not None


@pytest.mark.usefixtures("fbgemm_engine")
def test_a_legacy_int8_linear_is_listed_once_and_python_allocations_are_not_taken_for_one():
    """``torch.fbgemm_linear_int8_weight_fp32_activation`` called itself: listed once. A
    float and an int32 ``torch.empty`` of the same size made in Python (as the kernel's output
    and buffer are in C++) are not taken for one."""
    torch.manual_seed(0)
    w = _pack(torch.randn(5, 4))
    bias = torch.randn(5)

    def linear(x):
        return torch.fbgemm_linear_int8_weight_fp32_activation(
            x, w[0], w[1], w[2], w[3], w[4], bias
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        counted = gp.count_fpo(linear, torch.randn(2, 4), backward=False)
    assert (counted.total, counted.unknown_ops) == (0, {_LEGACY: 1})

    def buffers(x):
        return torch.empty(2, 5), torch.empty(2, 5, dtype=torch.int32)

    counted = gp.count_fpo(buffers, torch.randn(2, 4), backward=False)
    assert (counted.total, counted.unknown_ops) == (0, {})
