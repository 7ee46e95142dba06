"""FPO counts session 23 left approximate (s24), proved from ATen's CPU kernels.

Each expected count is derived beside it from the kernel torch runs (``Embedding.cpp``,
``GridSampler.cpp`` and ``GridSampler.h``, ``cpu/UpSampleKernel.cpp`` and ``UpSample.h``,
``mkl/SpectralOps.cpp`` and pocketfft) or counted by a Python port of the kernel that counts
every add, subtract, multiply, divide, compare and rounding it performs, its values checked
against torch's (so the port is the op). Conventions, as docs/fpo.md states them: a BLAS
product is ``2mkn`` (its kernel's multiply-adds into a zeroed accumulator); any other kernel is
counted as its source writes it: ``a * w + b * v`` is 3, ``res = 0; res += a * w; res += b *
v`` is 4.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted as _Counted  # noqa: E402
from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo import _rules_spectral  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


def _op(result, op: str, phase: str = "forward") -> int:
    return result.by_op_phase[op][phase]


# -- Embedding(max_norm=...): only the rows over max_norm are scaled ---------------------------


def _graded_embedding(**kwargs):
    """``Embedding(10, 4, max_norm=1.0)`` whose row ``r`` is ``0.2 r`` in every element: its
    2-norm is ``0.4 r``, so rows 0-2 are within ``max_norm`` and rows 3-9 over it."""
    embedding = nn.Embedding(10, 4, max_norm=1.0, **kwargs)
    with torch.no_grad():
        embedding.weight.copy_(0.2 * torch.arange(10.0)[:, None].expand(10, 4))
    return embedding


def test_embedding_renorm_counts_only_the_rows_over_max_norm():
    """Tokens [[1, 2, 2], [7, 1, 3]]: 4 distinct rows (1, 2, 3, 7). ATen's
    ``embedding_renorm_cpu_`` visits each distinct row once: its 2-norm (``2D + 1`` = 9) and
    the compare with ``max_norm`` (1): 10 each, 40; only rows 3 (norm 1.2) and 7 (2.8) are
    over it and scaled: ``scale = max_norm / (norm + 1e-7)`` (2) and ``row *= scale`` (4): 6
    each, 12. 52 (it was 64: every distinct row counted as scaled, since the rule saw the
    weight after the in-place op). The op itself, run outside the count (which leaves the
    weights as they were), confirms which rows it scales."""
    embedding = _graded_embedding()
    ids = torch.tensor([[1, 2, 2], [7, 1, 3]])
    before = embedding.weight.detach().clone()
    result = gp.count_fpo(embedding, ids, backward=False)
    assert torch.equal(embedding.weight, before)
    embedding(ids)
    scaled = (embedding.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert scaled == [3, 7]
    assert result.by_op["aten.embedding_renorm_"] == 4 * 10 + len(scaled) * 6 == 52


def test_embedding_renorm_reads_the_rows_before_it_scales_them():
    """A count after a real forward on the same tokens: that forward scaled rows 3 and 7 to
    ``max_norm`` (norm ``1 / (1 + 1e-7 / norm)``, just under 1), so none is over it now and
    only the norms and compares run: 40 (a count leaves the rows as they were: a second count
    without the forward is 52 again). The meta device has no values: every token counts as a
    distinct row over ``max_norm``, 6 x 16 = 96, an upper bound (unchanged)."""
    embedding = _graded_embedding()
    ids = torch.tensor([[1, 2, 2], [7, 1, 3]])
    first = gp.count_fpo(embedding, ids, backward=False)
    assert gp.count_fpo(embedding, ids, backward=False).by_op["aten.embedding_renorm_"] == 52
    embedding(ids)
    second = gp.count_fpo(embedding, ids, backward=False)
    assert first.by_op["aten.embedding_renorm_"] == 52
    assert second.by_op["aten.embedding_renorm_"] == 40
    meta = _graded_embedding(device="meta")
    assert gp.count_fpo(meta, ids.to("meta"), backward=False).by_op[
        "aten.embedding_renorm_"
    ] == 6 * (10 + 6)


def test_embedding_renorm_with_norm_type_1():
    """``norm_type=1``: the norm is ``|x|`` summed, 2 per element (8), no root; the compare 1.
    The 1-norm of row ``r`` is ``0.8 r``: of the distinct rows 1, 2, 3, 7, rows 2 (1.6), 3 and
    7 are over 1.0: ``4 * 9 + 3 * 6`` = 54 (it was 60)."""
    embedding = _graded_embedding(norm_type=1.0)
    ids = torch.tensor([[1, 2, 2], [7, 1, 3]])
    result = gp.count_fpo(embedding, ids, backward=False)
    assert result.by_op["aten.embedding_renorm_"] == 4 * 9 + 3 * 6


# -- _grid_sampler_2d_cpu_fallback: ATen's scalar 2-D kernel ------------------------------------


def _floor(x):
    return _Counted.of(math.floor(x))


def _nearbyint(x):
    _Counted.ops += 1
    return int(round(float(x)))  # ties to even, as std::nearbyint


def _clip(x, size):  # clip_coordinates: std::min(size - 1, std::max(x, 0)), 2 compares
    _Counted.ops += 2
    return _Counted(min(float(size - 1), max(float(x), 0.0)))


def _compute_coordinates(x, size, padding):  # zeros 0, border: the clip
    return _clip(x, size) if padding == 1 else x


def _unnormalize(x, size, align_corners):
    if align_corners:
        return ((x + 1) / 2) * (size - 1)
    return ((x + 1) * size - 1) / 2


def _source_index(x, size, padding, align_corners):
    return _compute_coordinates(_unnormalize(x, size, align_corners), size, padding)


def _cubic_coefficients(t):  # get_cubic_upsample_coefficients, A = -0.75 a runtime value
    a = _Counted(-0.75)

    def conv1(x):  # ((A + 2) * x - (A + 3)) * x * x + 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def conv2(x):  # ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    x2 = 1.0 - t
    return [conv2(t + 1.0), conv1(t), conv1(x2), conv2(x2 + 1.0)]


def _cubic_interp1d(x0, x1, x2, x3, t):
    c = _cubic_coefficients(t)
    return x0 * c[0] + x1 * c[1] + x2 * c[2] + x3 * c[3]


def _fallback_reference(image, grid, mode, padding, align_corners):
    """``_grid_sampler_2d_cpu_fallback`` in Python: (output, ops performed)."""
    _Counted.ops = 0
    n, c, h, w = image.shape
    _, oh, ow, _ = grid.shape
    img, g = image.tolist(), grid.tolist()
    out = torch.zeros(n, c, oh, ow, dtype=torch.float64)
    zero = _Counted(0.0)
    for b in range(n):
        for y in range(oh):
            for xi in range(ow):
                gx, gy = _Counted(g[b][y][xi][0]), _Counted(g[b][y][xi][1])
                ix = _source_index(gx, w, padding, align_corners)
                iy = _source_index(gy, h, padding, align_corners)

                def value(ch, row, col, planes=img[b]):
                    inside = 0 <= row < h and 0 <= col < w
                    return _Counted(planes[ch][row][col]) if inside else zero

                if mode == 0:  # bilinear: every corner in bounds in these tests
                    x0, y0 = int(_floor(ix)), int(_floor(iy))
                    nw = ((x0 + 1) - ix) * ((y0 + 1) - iy)
                    ne = (ix - x0) * ((y0 + 1) - iy)
                    sw = ((x0 + 1) - ix) * (iy - y0)
                    se = (ix - x0) * (iy - y0)
                    for ch in range(c):
                        res = _Counted(0.0)
                        res += value(ch, y0, x0) * nw
                        res += value(ch, y0, x0 + 1) * ne
                        res += value(ch, y0 + 1, x0) * sw
                        res += value(ch, y0 + 1, x0 + 1) * se
                        out[b, ch, y, xi] = float(res)
                elif mode == 1:
                    col, row = _nearbyint(ix), _nearbyint(iy)
                    for ch in range(c):
                        out[b, ch, y, xi] = float(value(ch, row, col))
                else:
                    ix = _unnormalize(gx, w, align_corners)
                    iy = _unnormalize(gy, h, align_corners)
                    ix_nw, iy_nw = _floor(ix), _floor(iy)
                    tx, ty = ix - ix_nw, iy - iy_nw

                    def bounded(ch, px, py):  # get_value_bounded
                        px = _compute_coordinates(px, w, padding)
                        py = _compute_coordinates(py, h, padding)
                        return value(ch, int(py), int(px))

                    for ch in range(c):
                        rows = []
                        for i in range(4):  # each call's arguments as the kernel writes them
                            taps = [
                                bounded(ch, ix_nw - 1, iy_nw - 1 + i),
                                bounded(ch, ix_nw + 0, iy_nw - 1 + i),
                                bounded(ch, ix_nw + 1, iy_nw - 1 + i),
                                bounded(ch, ix_nw + 2, iy_nw - 1 + i),
                            ]
                            rows.append(_cubic_interp1d(*taps, tx))
                        out[b, ch, y, xi] = float(_cubic_interp1d(*rows, ty))
    return out, _Counted.ops


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize(("padding", "align_corners"), [(0, False), (1, True), (1, False)])
def test_grid_sampler_fallback_counts_what_the_scalar_kernel_performs(mode, padding, align_corners):
    """The fallback's count equals the operations of a port of the kernel that performs them
    (its values equal the op's). x (1, 2, 4, 5), grid (1, 3, 3, 2) inside the image, so every
    bilinear corner is in bounds (the kernel skips out-of-bounds corners; the rule counts them,
    an upper bound). By hand, zeros padding without align_corners (``L`` = 9 locations, ``E``
    = 18 output elements; each coordinate unnormalised ``((x + 1) * size - 1) / 2``, 4):
    bilinear ``L (2 * 4 + 2 floors + 4 weights of 3) + E * 8`` (``res = 0; res += v * w`` for
    4 corners) = 342; nearest ``L (8 + 2)`` = 90; bicubic ``L (8 + 8 + 2 floors + 2
    fractions) + E (16 taps x 3 for the positions + 5 cubic_interp1d of 35 + 7)`` = 180 + 18 x
    258 = 4,824. It was counted as upsampling: ``L (3 * 2) + E * 9`` = 216, 54 and 774."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 4, 5)
    grid = torch.rand(1, 3, 3, 2) - 0.5
    expected_values, expected = _fallback_reference(image, grid, mode, padding, align_corners)
    op = torch.ops.aten._grid_sampler_2d_cpu_fallback
    values = op(image, grid, mode, padding, align_corners)
    torch.testing.assert_close(values.double(), expected_values, rtol=1e-5, atol=1e-5)
    result = gp.count_fpo(
        lambda a, b: op(a, b, mode, padding, align_corners), image, grid, backward=False
    )
    assert result.by_op == {"aten._grid_sampler_2d_cpu_fallback": expected}
    if (padding, align_corners) == (0, False):
        assert expected == {0: 342, 1: 90, 2: 4_824}[mode]


@pytest.mark.parametrize(
    ("mode", "padding", "align_corners", "expected"),
    [
        (0, 0, False, 954),
        (1, 0, False, 126),
        (2, 0, False, 6_912),
        (0, 2, True, 9 * (2 * 18 + 16) + 18 * 40),
        (2, 2, False, 9 * (2 * 19 + 10 + 140) + 18 * 16 * (19 + 44)),
    ],
)
def test_grid_sampler_fallback_backward_by_hand(mode, padding, align_corners, expected):
    """``_grid_sampler_2d_cpu_fallback_backward``, x (1, 2, 4, 5), grid (1, 3, 3, 2): 9
    locations, 18 gradient elements. It has no output mask: the input's gradient is always
    computed. Per location both coordinates with their multipliers (unnormalise 4 + ``size /
    2``, 1: 5; with align_corners 3 + 1; reflection + the reflection with its gradient 10,
    the clip's 2 compares, ``grad_in * grad_refl * grad_clip`` 2: 14). Bilinear: + 2 floors, 4
    weights of 3, the 2 multipliers applied (16); per gradient element 4 ``w * g`` added (8)
    and per corner ``gix -= v * (iy_se - iy) * g`` and ``giy`` (4 each, 32): 40. So zeros 9 x
    26 + 18 x 40 = 954; reflection with align_corners ``9 (2 * 18 + 16) + 18 * 40`` = 1,188.
    Nearest: 9 x (10 + 2) + 18 = 126. Bicubic: + the coordinates unnormalised again with their
    multipliers (2 x 5), 2 floors, 2 fractions, both axes' coefficients (2 x 35) and their
    derivatives (2 x 32), the 2 multipliers: 150 + 10 = 160 per location; per gradient element
    16 taps of 19 (the positions written in both calls 8, ``g * cx * cy`` added 3, ``gix``
    and ``giy`` 4 each) + their clipping (4 clips of a coordinate per tap: zeros 0, reflection
    11 each): 9 x 160 + 18 x 304 = 6,912. (It was counted from upsampling: bilinear 18 x 9 +
    18 x 18 + 54 = 540.)"""
    image, grid = torch.randn(1, 2, 4, 5), torch.rand(1, 3, 3, 2) - 0.5
    op = torch.ops.aten._grid_sampler_2d_cpu_fallback_backward
    result = gp.count_fpo(
        lambda a, b: op(torch.ones(1, 2, 3, 3), a, b, mode, padding, align_corners),
        image,
        grid,
        backward=False,
    )
    assert result.by_op["aten._grid_sampler_2d_cpu_fallback_backward"] == expected


def test_grid_sample_counts_the_fallback_when_aten_takes_it():
    """``grid_sampler_2d`` on a float input runs the scalar fallback inside the op when a
    gather offset would overflow the vectorised kernel's 32-bit offsets: here the grid's W
    stride (2^29, a grid of width 1, so no memory is spanned) times the lanes less one (7 or
    15) is over 2^31 - 1. x (1, 2, 4, 5), grid (1, 3, 1, 2), bilinear, zeros: 3 locations, 6
    elements. Fallback: forward ``3 (8 + 14) + 6 * 8`` = 114, backward ``3 (10 + 16) + 6 *
    40`` = 318; the same grid laid out contiguously takes the vectorised kernel: ``3 (2 * 3 +
    10) + 6 * 7`` = 90 and ``3 (2 * 3 + 12) + 6 * (14 + 8)`` = 186 (what both counted
    before)."""
    image = torch.randn(1, 2, 4, 5, requires_grad=True)
    values = torch.rand(6) - 0.5
    strided = values.as_strided((1, 3, 1, 2), (6, 2, 2**29, 1))
    contiguous = torch.empty(1, 3, 1, 2)
    contiguous.copy_(strided)
    assert contiguous.stride() == (6, 2, 2, 1)
    torch.testing.assert_close(
        F.grid_sample(image, strided, align_corners=False),
        F.grid_sample(image, contiguous, align_corners=False),
    )
    fallback = gp.count_fpo(lambda a: F.grid_sample(a, strided, align_corners=False), image)
    assert _op(fallback, "aten.grid_sampler_2d") == 114
    assert _op(fallback, "aten.grid_sampler_2d_backward", "backward") == 318
    vectorised = gp.count_fpo(lambda a: F.grid_sample(a, contiguous, align_corners=False), image)
    assert _op(vectorised, "aten.grid_sampler_2d") == 90
    assert _op(vectorised, "aten.grid_sampler_2d_backward", "backward") == 186
    # on meta there are no strides to read from values: the vectorised kernel's count
    meta = gp.count_fpo(
        lambda a: F.grid_sample(a, contiguous.to("meta"), align_corners=False),
        torch.randn(1, 2, 4, 5, device="meta"),
        backward=False,
    )
    assert _op(meta, "aten.grid_sampler_2d") == 90


# -- interpolation: a k-tap interpolation is counted as the kernel writes it, 2k - 1 ------------


def _bicubic_reference(image, size):
    """``upsample_bicubic2d`` (align_corners=False) as ATen's CPU kernel computes it, in Python:
    per dimension its scale ``in / out`` (``area_pixel_compute_scale``); per output index
    (``HelperInterpCubic::compute_indices_weights``, once per row and column) the source
    ``scale * (i + 0.5) - 0.5``, ``guard_index_and_lambda`` (the floor, ``t = real - floor``
    clamped to [0, 1] by a max and a min), the cubic coefficients of ``t`` and the 4 taps
    clamped into the input (integer arithmetic, 0); per output element four interpolations
    along W and one along H, each ``out = t_0 * w_0; out += t_j * w_j`` (``Interpolate``),
    counted. Returns (values, FPO of the weights, FPO per element)."""
    _, _, h, w = image.shape
    oh, ow = size
    _Counted.ops = 0

    def weights(in_size, out_size):
        scale = _Counted(in_size) / out_size
        table = []
        for i in range(out_size):
            real = scale * (_Counted(i) + 0.5) - 0.5
            first = min(math.floor(real), in_size - 1)
            _Counted.ops += 3  # floorf, then std::max(t, 0) and std::min(t, 1): compares
            t = _Counted(min(max(real - first, 0.0), 1.0))
            coefficients = [float(v) for v in _cubic_coefficients(t)]
            taps = [min(max(first - 1 + j, 0), in_size - 1) for j in range(4)]
            table.append((taps, coefficients))
        return table

    rows, cols = weights(h, oh), weights(w, ow)
    weight_ops = _Counted.ops
    _Counted.ops = 0
    plane = image[0, 0].tolist()
    out = torch.zeros(oh, ow, dtype=torch.float64)

    def interpolate(values, coefficients):
        acc = _Counted(values[0]) * coefficients[0]
        for j in range(1, 4):
            acc += _Counted(values[j]) * coefficients[j]
        return acc

    for y, (ty, cy) in enumerate(rows):
        for x, (tx, cx) in enumerate(cols):
            along_w = [interpolate([plane[r][c] for c in tx], cx) for r in ty]
            out[y, x] = float(interpolate(along_w, cy))
    return out, weight_ops, _Counted.ops // (oh * ow)


def test_bicubic_upsampling_counts_35_per_element():
    """Per output element 5 interpolations of 4 taps, 4 multiplies and 3 adds each: 35 (it was
    40, 8 per interpolation, counting an add into a zeroed accumulator the kernel does not
    perform). (1, 1, 4, 5) -> (7, 9): 63 elements, 2,205. Plus the weights (s25): the scales
    ``4 / 7`` and ``5 / 9`` (1 each) and per output index, 7 rows and 9 columns, the source
    index (3), its floor, fraction and clamp (4) and the coefficients (35): 42, so 2 + 16 x 42
    = 674; 2,879 (2,205 until s25)."""
    torch.manual_seed(0)
    image = torch.randn(1, 1, 4, 5, dtype=torch.float64)
    expected_values, weight_ops, per_element = _bicubic_reference(image, (7, 9))
    values = F.interpolate(image, size=(7, 9), mode="bicubic", align_corners=False)
    torch.testing.assert_close(values[0, 0], expected_values)
    assert per_element == 35
    assert weight_ops == 2 + (7 + 9) * (3 + 4 + 35) == 674
    result = gp.count_fpo(
        lambda a: F.interpolate(a, size=(7, 9), mode="bicubic"), image, backward=False
    )
    assert result.by_op["aten.upsample_bicubic2d"] == weight_ops + 63 * 35 == 2_879


def test_antialiased_resize_counts_atens_separable_passes():
    """(1, 1, 3, 8) -> (3, 4) bilinear with antialias: only W changes (scale 2, support 2).
    Output ``i`` reads ``[int(2i - 0.5), min(int(2i + 3.5), 8))``: windows of 3, 4, 4, 3. ATen
    runs one pass, each of the 3 rows to 4 outputs of ``2k - 1``: 3 x (5 + 7 + 7 + 5) = 72 (it
    was 84, ``2k`` per window). Plus the pass's weights, once (``_compute_index_ranges_weights``,
    s25): the scale ``8 / 4`` (1), the support's compare and ``(2 * 0.5) * 2`` (3) and its
    ceil (1): 5; per output index the centre ``2 (i + 0.5)`` (2), ``invscale``'s compare and
    ``1 / 2`` (2), the window's ends (4), per tap its argument ``(j + xmin - c + 0.5) *
    invscale`` (3), the triangle filter (``|x|``, ``x < 1``, ``1 - x``: 3, every tap here is
    inside it, ``|x|`` <= 0.75) and ``total_w += w`` (1), then ``total_w != 0`` (1), per tap ``w
    /= total_w`` and the running max (2), and ``wt_max`` across indices (1): ``10 + 9k``, so
    37 + 46 + 46 + 37 = 166: 72 + 5 + 166 = 243 (72 until s25)."""
    image = torch.randn(1, 1, 3, 8)
    result = gp.count_fpo(
        lambda a: F.interpolate(a, size=(3, 4), mode="bilinear", antialias=True),
        image,
        backward=False,
    )
    windows = (3, 4, 4, 3)
    weights = 5 + sum(10 + 9 * k for k in windows)
    assert result.by_op["aten._upsample_bilinear2d_aa"] == 72 + weights == 243


# -- FFT normalisation: MKL and pocketfft scale an rfft differently ----------------------------


def test_fft_backend_is_this_builds():
    """ATen compiles pocketfft in only without MKL: an MKL build runs MKL."""
    expected = "mkl" if torch.backends.mkl.is_available() else "pocketfft"
    assert _rules_spectral.fft_backend() == expected


@pytest.mark.parametrize(("backend", "scale"), [("mkl", 2 * 20), ("pocketfft", 32)])
def test_rfft_normalisation_as_each_library_applies_it(backend, scale, monkeypatch):
    """``rfft`` of a real (4, 8), ``norm="ortho"``: ``2.5 * 32 * 3`` = 240 + the scaling. MKL
    scales the one-sided output, (4, 5) complex values, 2 real multiplies each: 40; pocketfft
    (``r2c`` with ``fct``: ``rfftp::exec``'s ``copy_and_norm`` over the packed result) the 8
    real values of each of the 4 transforms: 32. The build here has one library, so the other
    is selected by replacing the detection (``fft_backend``), as on a build without MKL (macOS,
    Arm). rfft2 of (2, 4, 8): 2 transforms of 32 points, 800; MKL scales (2, 4, 5) complex, 80;
    pocketfft scales the last axis' real values once (the other axis runs with a factor of 1),
    64. (Before s24 every build counted MKL's.)"""
    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: backend)
    x = torch.randn(4, 8)
    result = gp.count_fpo(lambda a: torch.fft.rfft(a, norm="ortho"), x, backward=False)
    assert result.by_op == {"aten._fft_r2c": 240 + scale}
    two_d = gp.count_fpo(
        lambda a: torch.fft.rfft2(a, norm="ortho"), torch.randn(2, 4, 8), backward=False
    )
    assert two_d.by_op == {"aten._fft_r2c": 800 + (80 if backend == "mkl" else 64)}
    # the rule also takes the library as a parameter; without normalisation they agree
    rule = RULES["aten._fft_r2c"].fn
    assert rule((4, 8), [1], 1, True, out_shape=(4, 5), backend=backend) == 240 + scale
    assert rule((4, 8), [1], 0, True, out_shape=(4, 5), backend=backend) == 240


# -- the dense embedding backward lives with the embedding rules --------------------------------


def test_dense_embedding_backward_rule_is_in_rules_embedding():
    """Moved from ``_rules_pointwise`` (s24), unchanged: 6 tokens of 4, one of them
    ``padding_idx``: 5 x 4 adds = 20."""
    rule = RULES["aten.embedding_dense_backward"]
    assert rule.fn.__module__ == "greenprint.fpo._rules_embedding"
    embedding = nn.Embedding(10, 4, padding_idx=0)
    result = gp.count_fpo(embedding, torch.tensor([[1, 2, 0], [3, 3, 4]]))
    assert _op(result, "aten.embedding_dense_backward", "backward") == 20
