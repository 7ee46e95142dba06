"""Batch norm's backward on tensors contiguous in both formats, as ATen picks its path (s36 audit).

``batch_norm_backward_cpu_template`` runs ``batch_norm_cpu_backward_kernel`` only when the input
and the gradient are each contiguous in a format and ``input.suggest_memory_format() ==
grad_out_.suggest_memory_format()``; else its generic loops, which call ``at::sum`` on the
gradient. ``suggest_memory_format`` reads the strides (c10's ``is_channels_last_strides_2d``),
not ``is_contiguous``: an (N, C, 1, 1) tensor with channels-last strides ``(C, 1, C, C)``
suggests channels last, with the default ``(C, 1, 1, 1)`` contiguous, though both are
contiguous in both formats. The rule read both as contiguous before s36, so a pooled
channels-last feature map normalised and flattened into a linear layer (the input
channels-last, the gradient from the flatten's view contiguous) was counted as the
channels-last kernel, which ATen does not run there.

Which path ATen ran is read from torch's profiler (the generic loops' ``aten::sum``; the
channels-last kernel's per-thread buffer ``aten::zeros``; neither: the contiguous kernel), and
the count is the s34 port's (:func:`test_fpo_batch_norm_s34.port_backward`), whose path is the
one ATen ran, on CPU tensors and on meta copies with the same strides.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_fpo_batch_norm_s34 import _backward_kernel, _count, port_backward  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import greenprint as gp  # noqa: E402


def _strided(shape, layout):
    """A float64 tensor of ``shape`` with the default strides or channels-last ones (set even
    where the tensor is contiguous in both formats: ``.contiguous(memory_format=...)`` would
    return such a tensor unchanged)."""
    x = torch.randn(*shape, dtype=torch.float64)
    if layout == "default":
        return x
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    out = torch.empty(shape, dtype=torch.float64, memory_format=fmt)
    out.copy_(x)
    return out


def _aten_path(fn):
    """The path ``native_batch_norm_backward`` took, from the ops it called."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    called: set[str] = set()

    def under(event):
        for child in event.cpu_children:
            called.add(child.name)
            under(child)

    runs = [e for e in prof.events() if e.name == "aten::native_batch_norm_backward"]
    assert len(runs) == 1
    under(runs[0])
    if "aten::sum" in called:
        return "generic"
    return "channels_last" if "aten::zeros" in called else "contiguous"


def _f64(values):
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


SHAPES = [(4, 3, 1, 1), (4, 1, 5, 5), (1, 3, 1, 5), (4, 1, 1, 1), (2, 3, 2, 1, 1), (2, 1, 2, 3, 2)]
LAYOUTS = ["default", "channels_last"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("g_layout", LAYOUTS)
@pytest.mark.parametrize("train", [True, False])
def test_backward_takes_atens_path_by_suggest_memory_format(shape, x_layout, g_layout, train):
    threads = torch.get_num_threads()
    c = shape[1]
    x, g = _strided(shape, x_layout) * 2 + 3, _strided(shape, g_layout)
    w = torch.randn(c, dtype=torch.float64)
    rm, rv = torch.randn(c, dtype=torch.float64), torch.rand(c, dtype=torch.float64) + 0.5
    _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
        x, w, None, rm.clone(), rv.clone(), train, 0.1, 1e-5
    )
    sm, si = (save_mean, save_invstd) if train else (None, None)
    mask = [True, True, True]

    def backward(g, x, w, rm, rv, sm, si):
        return torch.ops.aten.native_batch_norm_backward(g, x, w, rm, rv, sm, si, train, 1e-5, mask)

    result = []
    path = _aten_path(lambda: result.append(backward(g, x, w, rm, rv, sm, si)))
    assert _backward_kernel(g, x) == path
    gi, gw, gb = result[0]
    ref_gi, ref_gw, ref_gb, ops = port_backward(
        g,
        x,
        w,
        rm,
        rv,
        save_mean.tolist() if train else None,
        save_invstd.tolist() if train else None,
        train,
        1e-5,
        mask,
        threads,
    )
    for plane, ref in zip(gi.transpose(0, 1).reshape(c, -1), ref_gi, strict=True):
        torch.testing.assert_close(plane, _f64(ref))
    torch.testing.assert_close(gw, _f64(ref_gw))
    torch.testing.assert_close(gb, _f64(ref_gb))
    assert _count(backward, g, x, w, rm, rv, sm, si) == ops
    meta = [t.to("meta") if t is not None else None for t in (g, x, w, rm, rv, sm, si)]
    assert meta[0].stride() == g.stride() and meta[1].stride() == x.stride()
    assert _count(backward, *meta) == ops


def test_a_pooled_channels_last_map_normalised_then_flattened_runs_the_generic_backward():
    """AdaptiveAvgPool2d(1) of a channels-last map gives (4, 8, 1, 1) with channels-last
    strides; the gradient back through Flatten is a contiguous view. ATen runs the generic
    loops: 4N + 6N + 4C + C (the weight's) = 360 for N = 32, C = 8, where the rule counted the
    channels-last kernel, 4N + 10N + 2TC + C (488 on 2 threads)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.BatchNorm2d(8),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, 4)
    with gp.FPOCounter() as counter:
        model(x).backward(grad)
    assert counter.result.by_op["aten.native_batch_norm_backward"] == 4 * 32 + 6 * 32 + 4 * 8 + 8
    out = model(x)
    assert _aten_path(lambda: out.backward(grad)) == "generic"
