"""FFT rules: 5 N log2 N per complex transform, half for real input or output."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402


def count(fn):
    with gp.FPOCounter() as c:
        fn()
    return c.result


def complex_randn(*shape):
    return torch.randn(*shape, dtype=torch.complex64)


def test_complex_fft_is_5_n_log2_n_per_transform():
    """Four transforms of 8 points: 4 * 5*8*3 = 480."""
    x = complex_randn(4, 8)
    r = count(lambda: torch.fft.fft(x))
    assert r.by_op == {"aten._fft_c2c": 480}


def test_inverse_scales_each_complex_output_element_by_its_1_over_n():
    """ifft of (4, 8): 480 + its 32 complex outputs times the real ``1/n``, 2 real multiplies
    each: 64 (it was 32, one per complex element; docs/fpo.md: a complex times a real is 2).
    ``norm="ortho"`` alike."""
    x = complex_randn(4, 8)
    assert count(lambda: torch.fft.ifft(x)).total == 480 + 64
    assert count(lambda: torch.fft.fft(x, norm="ortho")).total == 480 + 64


def test_real_input_and_real_output_transforms_cost_half():
    """rfft of (4, 8): 2.5 * 32 * 3 = 240; its one-sided output is (4, 5) complex, so ortho
    adds 2 * 20 = 40 (it was 20, one per complex element). irfft back to (4, 8): 240 + 32 for
    the 1/n on its real output (1 each); fft of a real input is a two-sided r2c: 240."""
    x = torch.randn(4, 8)
    assert count(lambda: torch.fft.rfft(x)).by_op == {"aten._fft_r2c": 240}
    assert count(lambda: torch.fft.rfft(x, norm="ortho")).total == 240 + 40
    y = complex_randn(4, 5)
    assert count(lambda: torch.fft.irfft(y)).by_op == {"aten._fft_c2r": 272}
    assert count(lambda: torch.fft.fft(x)).by_op["aten._fft_r2c"] == 240


def test_multi_dimensional_transform_is_5_n_log2_n_over_all_its_points():
    """fft2 over (4, 8): one transform of 32 points, 5 * 32 * 5 = 800 = the two passes
    (8 transforms of 4 points: 8*5*4*2 = 320; 4 of 8 points: 4*5*8*3 = 480)."""
    x = complex_randn(4, 8)
    assert count(lambda: torch.fft.fft2(x)).total == 800
    assert count(lambda: torch.fft.fft(torch.fft.fft(x, dim=0), dim=1)).total == 320 + 480


def test_lengths_that_are_not_powers_of_two_use_a_fractional_log2():
    x = complex_randn(3, 6)
    assert count(lambda: torch.fft.fft(x)).total == int(5 * 18 * math.log2(6)) == 232


@settings(max_examples=25, deadline=None)
@given(
    a=st.integers(0, 4),
    b=st.integers(0, 4),
    batch=st.integers(1, 3),
)
def test_fftn_equals_its_one_dimensional_passes(a, b, batch):
    x = complex_randn(batch, 2**a, 2**b)
    whole = count(lambda: torch.fft.fftn(x, dim=(1, 2))).total
    passes = count(lambda: torch.fft.fft(torch.fft.fft(x, dim=1), dim=2)).total
    assert whole == passes == 5 * batch * 2 ** (a + b) * (a + b)


def test_fft_backward_has_a_rule_for_every_op():
    x = torch.randn(4, 8, requires_grad=True)
    r = count(lambda: torch.fft.irfft(torch.fft.rfft(x) * 2).sum().backward())
    assert r.unknown_ops == {}
    assert r.backward_total > 0


def test_fft_on_meta_counts_as_on_cpu():
    x = torch.randn(4, 8)
    assert (
        count(lambda: torch.fft.rfft(x.to("meta"))).total == count(lambda: torch.fft.rfft(x)).total
    )
