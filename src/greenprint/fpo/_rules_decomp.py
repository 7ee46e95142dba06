"""FPO rules for the dense linear-algebra decompositions and solvers (``torch.linalg``).

The counts are the textbook leading terms for LAPACK's algorithms, per matrix, times the batch
(the product of the leading dimensions). Sources: Golub and Van Loan, Matrix Computations, 4th
ed. (2013), sections 3.1-3.2 (triangular systems, LU), 4.2 (Cholesky), 5.2 (Householder QR),
8.3 (symmetric QR algorithm), 8.6 (SVD, Figure 8.6.1), 7.5 (unsymmetric QR algorithm); LAPACK
Working Note 41 (the flop counts of the LAPACK routines); Trefethen and Bau, Numerical Linear
Algebra (1997), lectures 10, 20, 23, 25, 31.

For an ``m x n`` matrix (``m >= n`` unless stated; a square one has ``m = n``) and ``k``
right-hand sides:

=============================================  ==============================================
Cholesky (``potrf``)                           ``n^3 / 3``
LU with partial pivoting (``getrf``)           ``m n^2 - n^3 / 3`` (``2 n^3 / 3`` square)
triangular solve (``trsm``)                    ``n^2 k``
solve (LU, then two triangular solves)         ``2 n^3 / 3 + 2 n^2 k``
inverse (``getrf`` + ``getri``)                ``2 n^3``
Householder QR, R only (``geqrf``)             ``2 m n^2 - 2 n^3 / 3``
forming the reduced Q (``orgqr``)              another ``2 m n^2 - 2 n^3 / 3``
symmetric eigenvalues (``syevd``)              ``4 n^3 / 3``; with eigenvectors ``9 n^3``
SVD (Golub-Kahan-Reinsch)                      values ``4 m n^2 - 4 n^3 / 3``; thin U and V
                                               ``14 m n^2 + 8 n^3``; full U
                                               ``4 m^2 n + 8 m n^2 + 9 n^3``
general eigenvalues (``geev``)                 ``10 n^3``; with eigenvectors ``25 n^3``
=============================================  ==============================================

Iterative phases (QR sweeps, the SVD's bidiagonal iterations) depend on the data; the
constants above are the books' estimates for them. Complex matrices are counted as real ones.

``torch.linalg.svdvals``, ``eigvalsh`` and ``eigvals`` ask for the singular or eigen vectors
whenever a dispatch mode is active (they take their differentiable path), so under the counter
they run, and are counted, as ``svd``, ``eigh`` and ``eig``; the values-only counts apply
where torch calls ``_linalg_svd(compute_uv=False)``, ``_linalg_eigh(compute_v=False)`` or
``linalg_eigvals`` directly.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import register_rule, zero

__all__: list[str] = []


def _batch(shape: tuple[int, ...]) -> int:
    """Number of matrices in a ``(..., m, n)`` batch."""
    return math.prod(shape[:-2])


def _mn(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, columns)`` of the matrices of a ``(..., m, n)`` batch."""
    return shape[-2], shape[-1]


def _is_vector(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """``B`` is a vector (or a batch of vectors), as ``torch.linalg.solve`` reads it."""
    return len(b) == 1 or (len(b) == len(a) - 1 and tuple(b) == tuple(a[:-1]))


def _rhs(a: tuple[int, ...], b: tuple[int, ...], left: bool = True) -> int:
    """Right-hand sides of ``A X = B`` (``left``, ``B`` is ``n x k``) or ``X A = B`` (``k x n``)."""
    if _is_vector(a, b):
        return 1
    return b[-1] if left else b[-2]


def lu_fpo(m: int, n: int) -> int:
    """LU with partial pivoting of an ``m x n`` matrix: ``mn^2 - n^3/3`` for ``m >= n``."""
    if m < n:
        m, n = n, m
    return m * n * n - n**3 // 3


def qr_fpo(m: int, n: int) -> int:
    """Householder QR, R only: ``2mn^2 - 2n^3/3`` (``m >= n``; the wide case swaps them)."""
    if m < n:
        m, n = n, m
    return 2 * m * n * n - 2 * n**3 // 3


def svd_fpo(m: int, n: int, *, compute_uv: bool, full_matrices: bool) -> int:
    """Golub-Kahan-Reinsch SVD (Golub and Van Loan, Figure 8.6.1), ``m >= n`` after swapping."""
    if m < n:
        m, n = n, m
    if not compute_uv:
        return 4 * m * n * n - 4 * n**3 // 3
    if full_matrices:
        return 4 * m * m * n + 8 * m * n * n + 9 * n**3
    return 14 * m * n * n + 8 * n**3


# -- factorisations ---------------------------------------------------------------------------


@register_rule(["aten.linalg_cholesky_ex", "aten.cholesky"])
def cholesky_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``n^3 / 3`` per matrix."""
    n = self[-1]
    return _batch(self) * (n**3 // 3)


@register_rule(["aten.linalg_ldl_factor_ex"])
def ldl_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """Symmetric indefinite (Bunch-Kaufman) factorisation: ``n^3 / 3`` per matrix."""
    n = self[-1]
    return _batch(self) * (n**3 // 3)


@register_rule(["aten.linalg_lu_factor_ex", "aten.linalg_lu", "aten._lu_with_info"])
def lu_rule(a: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``m n^2 - n^3 / 3`` per matrix (``2 n^3 / 3`` square)."""
    return _batch(a) * lu_fpo(*_mn(a))


@register_rule("aten.linalg_qr")
def qr_rule(a: tuple[int, ...], mode: str = "reduced", **kwargs: Any) -> int:
    """R, and Q as the mode asks.

    R: ``2 m n^2 - 2 n^3 / 3``; the reduced Q (``mode="reduced"``) as much again; the full
    ``m x m`` Q (``"complete"``): ``4 (m^2 n - m n^2 + n^3 / 3)``; ``mode="r"``: R only.
    """
    m, n = _mn(a)
    r = qr_fpo(m, n)
    if mode == "r":
        q = 0
    elif mode == "complete" and m > n:
        q = 4 * (m * m * n - m * n * n + n**3 // 3)
    else:
        q = qr_fpo(m, n)
    return _batch(a) * (r + q)


@register_rule("aten.geqrf")
def geqrf_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """Householder QR, R and the reflectors: ``2 m n^2 - 2 n^3 / 3``."""
    return _batch(a) * qr_fpo(*_mn(a))


@register_rule(["aten.linalg_householder_product", "aten.orgqr"])
def householder_product_rule(a: tuple[int, ...], tau: tuple[int, ...], **kwargs: Any) -> int:
    """Forming ``m x n`` Q from ``k`` reflectors (``orgqr``): ``4mnk - 2(m + n)k^2 + 4k^3/3``."""
    m, n = _mn(a)
    k = tau[-1]
    return _batch(a) * (4 * m * n * k - 2 * (m + n) * k * k + 4 * k**3 // 3)


@register_rule("aten.ormqr")
def ormqr_rule(
    a: tuple[int, ...],
    tau: tuple[int, ...],
    c: tuple[int, ...],
    left: bool = True,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Applying ``k`` reflectors to an ``m x n`` matrix: ``4mnk - 2nk^2``.

    From the left; from the right ``m`` and ``n`` swap.
    """
    m, n = _mn(c)
    if not left:
        m, n = n, m
    k = tau[-1]
    return _batch(c) * (4 * m * n * k - 2 * n * k * k)


# -- eigenvalues and singular values ----------------------------------------------------------


@register_rule("aten._linalg_eigh")
def eigh_rule(a: tuple[int, ...], uplo: str = "L", compute_v: bool = True, **kw: Any) -> int:
    """Symmetric: ``4 n^3 / 3`` for the eigenvalues, ``9 n^3`` with the eigenvectors.

    The eigenvalues-only count is the tridiagonalisation's; the tridiagonal QR is ``O(n^2)``.
    """
    n = a[-1]
    return _batch(a) * (9 * n**3 if compute_v else 4 * n**3 // 3)


@register_rule("aten.linalg_eig")
def eig_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """Unsymmetric (Hessenberg QR): eigenvalues and eigenvectors, ``25 n^3``."""
    n = a[-1]
    return _batch(a) * 25 * n**3


@register_rule("aten.linalg_eigvals")
def eigvals_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """Unsymmetric, eigenvalues only: ``10 n^3``."""
    n = a[-1]
    return _batch(a) * 10 * n**3


@register_rule("aten._linalg_svd")
def svd_rule(
    a: tuple[int, ...],
    full_matrices: bool = False,
    compute_uv: bool = True,
    **kwargs: Any,
) -> int:
    """See :func:`svd_fpo`: values only, thin U and V, or full U."""
    m, n = _mn(a)
    cost = svd_fpo(m, n, compute_uv=bool(compute_uv), full_matrices=bool(full_matrices))
    return _batch(a) * cost


# -- solvers, inverse, determinant ------------------------------------------------------------


@register_rule(["aten._linalg_solve_ex", "aten.linalg_solve_ex"])
def solve_rule(a: tuple[int, ...], b: tuple[int, ...], *, left: bool = True, **kwargs: Any) -> int:
    """LU (``2 n^3 / 3``) and two triangular solves (``n^2`` each per right-hand side)."""
    n = a[-1]
    return _batch(a) * lu_fpo(n, n) + _batch_of(a, b) * 2 * n * n * _rhs(a, b, left)


def _batch_of(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Number of systems: ``B`` may broadcast against ``A``'s batch."""
    b_batch = math.prod(b[:-1]) if _is_vector(a, b) else _batch(b)
    return max(_batch(a), b_batch)


@register_rule("aten.linalg_lu_solve")
def lu_solve_rule(
    lu: tuple[int, ...],
    pivots: Any,
    b: tuple[int, ...],
    *,
    left: bool = True,
    **kwargs: Any,
) -> int:
    """Two triangular solves: ``2 n^2`` per right-hand side."""
    n = lu[-1]
    return _batch_of(lu, b) * 2 * n * n * _rhs(lu, b, left)


@register_rule("aten.linalg_ldl_solve")
def ldl_solve_rule(
    ld: tuple[int, ...], pivots: Any, b: tuple[int, ...], *args: Any, **kwargs: Any
) -> int:
    """``2 n^2`` per right-hand side, as ``lu_solve``.

    LAPACK's ``sytrs`` from ``ldl_factor``'s Bunch-Kaufman factors: the unit triangular solves
    with ``L`` and ``L^T`` (``n^2`` each) and the 1 x 1 and 2 x 2 blocks of ``D`` (lower order).
    """
    n = ld[-1]
    return _batch_of(ld, b) * 2 * n * n * _rhs(ld, b)


# ``lu_unpack`` copies L (unit diagonal) and U out of the packed LU and turns the pivots into a
# permutation matrix: data movement and integer swaps, 0 by rule.
register_rule("aten.lu_unpack")(zero)


@register_rule("aten.linalg_solve_triangular")
def solve_triangular_rule(
    a: tuple[int, ...], b: tuple[int, ...], *, left: bool = True, **kwargs: Any
) -> int:
    """``n^2`` per right-hand side."""
    n = a[-1]
    return _batch_of(a, b) * n * n * _rhs(a, b, bool(left))


@register_rule("aten.triangular_solve")
def triangular_solve_rule(b: tuple[int, ...], a: tuple[int, ...], *args: Any, **kw: Any) -> int:
    """The older ``triangular_solve(B, A)``: ``n^2`` per right-hand side."""
    n = a[-1]
    return _batch_of(a, b) * n * n * _rhs(a, b)


@register_rule("aten.cholesky_solve")
def cholesky_solve_rule(b: tuple[int, ...], l: tuple[int, ...], *args: Any, **kw: Any) -> int:  # noqa: E741
    """Two triangular solves with the Cholesky factor: ``2 n^2`` per right-hand side."""
    n = l[-1]
    return _batch_of(l, b) * 2 * n * n * _rhs(l, b)


@register_rule("aten.cholesky_inverse")
def cholesky_inverse_rule(l: tuple[int, ...], *args: Any, **kwargs: Any) -> int:  # noqa: E741
    """``potri``: invert the triangular factor and multiply, ``2 n^3 / 3``."""
    n = l[-1]
    return _batch(l) * (2 * n**3 // 3)


@register_rule("aten.linalg_inv_ex")
def inv_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """LU and ``getri``: ``2 n^3``."""
    n = a[-1]
    return _batch(a) * 2 * n**3


@register_rule("aten._linalg_det")
def det_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """LU (``2 n^3 / 3``) and the product of the diagonal (``n``)."""
    n = a[-1]
    return _batch(a) * (lu_fpo(n, n) + n)


@register_rule("aten._linalg_slogdet")
def slogdet_rule(a: tuple[int, ...], **kwargs: Any) -> int:
    """LU (``2 n^3 / 3``), then ``log |u_ii|`` summed (abs, log, add: ``3n``)."""
    n = a[-1]
    return _batch(a) * (lu_fpo(n, n) + 3 * n)


@register_rule("aten.linalg_lstsq")
def lstsq_rule(a: tuple[int, ...], b: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """Householder least squares: QR, ``Q^T B``, one triangular solve.

    For ``m >= n``: QR ``2mn^2 - 2n^3/3``, ``Q^T B`` ``4mnk - 2n^2k``, the solve ``n^2 k``.
    """
    m, n = _mn(a)
    k = _rhs(a, b)
    lo, hi = min(m, n), max(m, n)
    apply_q = 4 * hi * lo * k - 2 * lo * lo * k
    return _batch_of(a, b) * (qr_fpo(m, n) + apply_q + lo * lo * k)


@register_rule("aten.linalg_pinv")
def pinv_rule(a: tuple[int, ...], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Thin SVD (``14 m n^2 + 8 n^3``), then ``V diag(1/s) U^H``.

    With ``r = min(m, n)``: ``r`` reciprocals, ``n r`` scalings, the ``n x r`` by ``r x m``
    product (``2 n r m``).
    """
    m, n = _mn(a)
    r = min(m, n)
    form = r + n * r + 2 * n * r * m
    return _batch(a) * (svd_fpo(m, n, compute_uv=True, full_matrices=False) + form)
