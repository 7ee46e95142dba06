"""FPO rules for the fast Fourier transforms (``torch.fft``).

Conventions (the ones FFT benchmarks use, e.g. FFTW's "mflops" and Van Loan, Computational
Frameworks for the Fast Fourier Transform, 1992):

* a complex transform of ``N`` points costs ``5 N log2 N`` real FPO (radix-2 Cooley-Tukey:
  ``(N/2) log2 N`` butterflies of one complex multiply, 6 real FPO, and two complex adds, 4);
* a transform with real input (``rfft``) or real output (``irfft``) costs half:
  ``2.5 N log2 N``, ``N`` being the real signal's length;
* a multi-dimensional transform over sizes ``n_1 ... n_d`` is ``N = n_1 ... n_d`` points
  (``5 N log2 N`` is the sum of the one-dimensional passes: ``N / n_i`` transforms of
  ``5 n_i log2 n_i`` each), and the batch dimensions multiply it;
* lengths that are not powers of two use the same formula with a fractional ``log2``
  (rounded down to an integer at the end);
* normalisation (``norm="ortho"`` or the ``1/N`` of the inverse) multiplies each element the
  transform produces by a real factor: 2 real FPO per complex element (a complex times a real),
  1 per real element. An ``irfft`` scales its real output. An ``rfft`` is counted as this
  torch build's FFT library scales it (:func:`fft_backend`, ``mkl/SpectralOps.cpp``): MKL
  (x86 builds) scales the one-sided half, ``n // 2 + 1`` complex values per transform of
  ``n`` (2 each; the other half of a two-sided output is its mirror, a copy); pocketfft
  (builds without MKL: macOS, Arm) scales the ``n`` real values of its packed result, before
  they are unpacked into the one-sided output, ``n`` per transform, unless it plans Bluestein's
  algorithm for ``n`` (:func:`pocketfft_bluestein`), which scales ``n`` complex values, ``2n``.
  An ``irfft`` on pocketfft likewise: ``n`` per transform, ``2n`` under Bluestein.

These counts are real FPO on complex data, unlike the elementwise rules, which count one FPO
per complex element (see the Limits in docs/fpo.md).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []

_NO_NORMALIZATION = 0  # torch's fft_norm_mode: 0 none, 1 by 1/sqrt(n), 2 by 1/n


def _points(shape: tuple[int, ...], dims: Any) -> int:
    """Points of one transform: the product of the transformed dimensions' sizes."""
    if not shape:
        return 1
    return math.prod(shape[d % len(shape)] for d in dims)


def fft_fpo(elements: int, points: int, cost: float) -> int:
    """``cost * elements * log2(points)``: ``elements / points`` transforms of ``points``.

    ``cost`` is 5 for complex transforms and 2.5 for real ones.
    """
    if points <= 1 or elements <= 0:
        return 0
    return int(cost * elements * math.log2(points))


@functools.lru_cache(maxsize=1)
def fft_backend() -> str:
    """The library this torch build runs CPU FFTs with: ``"mkl"`` or ``"pocketfft"``.

    ATen compiles pocketfft in only when MKL is not enabled (``cmake/Dependencies.cmake``), so
    an MKL build (``torch.backends.mkl.is_available()``, the x86 wheels) runs MKL and the
    others (macOS, Linux on Arm) pocketfft. The two differ only in how an ``rfft`` applies its
    normalisation (see :func:`fft_r2c_rule`). Counts on the meta device use this build's too.
    """
    import torch

    return "mkl" if torch.backends.mkl.is_available() else "pocketfft"


def fft_library(input: Any) -> str:
    """The library an FFT of the tensor ``input`` runs on: ``"cufft"`` or :func:`fft_backend`.

    ``"cufft"`` on a CUDA tensor (ROCm's hipFFT too: ATen's same ``cuda/SpectralOps.cpp``).
    cuFFT normalises as MKL does: an ``rfft`` its one-sided slice, an ``irfft`` its real output
    (``_fft_r2c_cufft``, ``_fft_c2r_cufft``).
    """
    return "cufft" if input.device.type == "cuda" else fft_backend()


def _reads_library(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The FFT rules' ``backend``: the library the op's input runs on (:func:`fft_library`)."""
    return {"backend": fft_library(self)}


def _largest_prime_factor(n: int) -> int:
    """The largest prime factor of ``n``: pocketfft's ``util::largest_prime_factor``."""
    result = 1
    while n % 2 == 0:
        result, n = 2, n // 2
    x = 3
    while x * x <= n:
        while n % x == 0:
            result, n = x, n // x
        x += 2
    return n if n > 1 else result


def _cost_guess(n: int) -> float:
    """Pocketfft's ``util::cost_guess``.

    The sum of ``n``'s prime factors (those over 5 times 1.1), times ``n``.
    """
    total, rest = 0.0, n
    while rest % 2 == 0:
        total, rest = total + 2, rest // 2
    x = 3
    while x * x <= rest:
        while rest % x == 0:
            total, rest = total + (x if x <= 5 else 1.1 * x), rest // x
        x += 2
    if rest > 1:
        total += rest if rest <= 5 else 1.1 * rest
    return total * n


def _good_size_cmplx(n: int) -> int:
    """The smallest 2-3-5-7-11-smooth number ``>= n``: ``util::good_size_cmplx``."""
    if n <= 12:
        return n
    best = 2 * n
    f11 = 1
    while f11 < best:
        f117 = f11
        while f117 < best:
            f1175 = f117
            while f1175 < best:
                x = f1175
                while x < n:
                    x *= 2
                while True:
                    if x < n:
                        x *= 3
                    elif x > n:
                        best = min(best, x)
                        if x & 1:
                            break
                        x >>= 1
                    else:
                        return n
                f1175 *= 5
            f117 *= 7
        f11 *= 11
    return best


@functools.lru_cache(maxsize=1024)
def pocketfft_bluestein(n: int) -> bool:
    """Whether pocketfft plans a real transform of length ``n`` with Bluestein's algorithm.

    ``pocketfft_r``'s constructor (``pocketfft_hdronly.h``): a length under 50, or whose
    largest prime factor ``p`` has ``p * p <= n``, gets the FFTPACK plan; otherwise Bluestein's
    when ``2 * 1.5 * cost_guess(good_size_cmplx(2n - 1)) < 0.5 * cost_guess(n)``: lengths with
    a prime factor over about 160 (211: yes; 53: no).
    """
    if n < 50:
        return False
    p = _largest_prime_factor(n)
    if p * p <= n:
        return False
    return 2 * _cost_guess(_good_size_cmplx(2 * n - 1)) * 1.5 < 0.5 * _cost_guess(n)


def _pocketfft_scaling(transforms: int, n: int) -> int:
    """The normalisation of ``transforms`` pocketfft real transforms of length ``n``.

    The FFTPACK plan (``rfftp::exec``'s ``copy_and_norm``) multiplies the ``n`` real values of
    the packed result, ``n``; the Bluestein plan (``fftblue::fft``) folds the factor into its
    last complex multiply, ``c[m] = akf[m].special_mul(bk[m]) * fct``, over ``n`` complex
    values: ``2n``. (Bluestein multiplies by the factor also when it is 1, as part of that
    step, which the textbook ``2.5 N log2 N`` stands for: not counted.)
    """
    return transforms * (2 * n if pocketfft_bluestein(n) else n)


def _normalization(normalization: Any, values: int) -> int:
    """The scaling by ``1/n`` or ``1/sqrt(n)``: ``values`` real multiplies, none without it.

    ``values`` counts real numbers: 2 per complex element, 1 per real one.
    """
    return 0 if normalization == _NO_NORMALIZATION else values


def _one_sided(shape: tuple[int, ...], dims: Any) -> int:
    """Complex elements of the one-sided transform of a real ``shape`` over ``dims``.

    The last transformed dimension ``n`` keeps ``n // 2 + 1`` values.
    """
    if not shape or not dims:
        return numel(shape)
    last = list(dims)[-1] % len(shape)
    n = shape[last]
    return numel(shape) // n * (n // 2 + 1) if n else 0


@register_rule("aten._fft_c2c", reads=_reads_library)
def fft_c2c_rule(
    self: tuple[int, ...],
    dim: Any,
    normalization: Any = 0,
    forward: bool = True,
    *,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """Complex to complex: ``5 N log2 N`` per transform (+ the normalisation, 2 per element).

    (The normalisation was 1 per complex element before: a complex times a real is 2.)
    """
    scale = _normalization(normalization, 2 * numel(first_shape(out_shape)))
    return fft_fpo(numel(self), _points(self, dim), 5.0) + scale


@register_rule("aten._fft_r2c", reads=_reads_library)
def fft_r2c_rule(
    self: tuple[int, ...],
    dim: Any,
    normalization: Any = 0,
    onesided: bool = True,
    *,
    out_shape: Any = None,
    backend: str | None = None,
    **kwargs: Any,
) -> int:
    """Real to complex: ``2.5 N log2 N`` per transform of the real input (+ normalisation).

    The normalisation as the FFT library applies it (``backend``: :func:`fft_library` of the
    input, on meta tensors :func:`fft_backend`): MKL and cuFFT scale the one-sided output, 2 per
    complex element (``n // 2 + 1`` per transform of ``n``); pocketfft's ``r2c`` scales the
    ``n`` real values of each last-axis transform's packed result (``rfftp::exec``'s
    ``copy_and_norm``; the other axes of a multi-dimensional transform run with a factor of 1,
    unscaled), so 1 per real input element; for a last-axis length it plans with Bluestein's
    algorithm (:func:`pocketfft_bluestein`) 2 per element (:func:`_pocketfft_scaling`; until
    s25 1, ``n`` per transform low). A two-sided output (``onesided=False``) is filled in from
    the one-sided half by conjugate symmetry, a copy, in all three.
    """
    if normalization == _NO_NORMALIZATION:
        scale = 0
    elif (backend or fft_backend()) == "pocketfft":
        n = self[list(dim)[-1] % len(self)] if self and dim else 1
        scale = _pocketfft_scaling(numel(self) // n if n else 0, n)
    else:
        scale = 2 * _one_sided(self, dim)
    return fft_fpo(numel(self), _points(self, dim), 2.5) + scale


@register_rule("aten._fft_c2r", reads=_reads_library)
def fft_c2r_rule(
    self: tuple[int, ...],
    dim: Any,
    normalization: Any = 0,
    last_dim_size: Any = None,
    *,
    out_shape: Any = None,
    backend: str | None = None,
    **kwargs: Any,
) -> int:
    """Complex to real: ``2.5 N log2 N`` per transform of the real output (+ normalisation).

    The normalisation scales the real output: 1 per element; pocketfft's last-axis transform
    (``c2r`` runs the other axes first with a factor of 1) under a Bluestein plan for the
    output's length ``n`` scales ``n`` complex values, 2 per element (:func:`_pocketfft_scaling`;
    until s25 1).
    """
    out = first_shape(out_shape)
    textbook = fft_fpo(numel(out), _points(out, dim), 2.5)
    if normalization == _NO_NORMALIZATION or not out or not dim:
        return textbook + _normalization(normalization, numel(out))
    if (backend or fft_backend()) == "pocketfft":
        n = out[list(dim)[-1] % len(out)]
        return textbook + _pocketfft_scaling(numel(out) // n if n else 0, n)
    return textbook + numel(out)
