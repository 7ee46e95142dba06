"""Linear-algebra decompositions and solvers against their textbook counts.

n = 6 (n^3 = 216) for square matrices, 8 x 6 for tall ones (m n^2 = 288).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import greenprint as gp  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402

N3 = 6**3


def count(fn):
    with gp.FPOCounter() as c:
        fn()
    return c.result


def spd(*batch, n=6):
    a = torch.randn(*batch, n, n, dtype=torch.float64)
    return a @ a.mT + n * torch.eye(n, dtype=torch.float64)


def square(*batch, n=6):
    return torch.randn(*batch, n, n, dtype=torch.float64) + 3 * torch.eye(n, dtype=torch.float64)


def tall():
    return torch.randn(8, 6, dtype=torch.float64)


def total(fn):
    r = count(fn)
    assert r.unknown_ops == {}
    return r.total


def test_cholesky_is_n3_over_3_per_matrix():
    a = spd(2)
    assert total(lambda: torch.linalg.cholesky(a)) == 2 * N3 // 3 == 144


def test_lu_is_mn2_minus_n3_over_3():
    """Square: 216 - 72 = 144 = 2n^3/3; 8 x 6: 8*36 - 72 = 216; 6 x 8 the same."""
    a = square()
    assert total(lambda: torch.linalg.lu_factor(a)) == 144
    assert total(lambda: torch.linalg.lu(a)) == 144
    assert total(lambda: torch.linalg.lu_factor(tall())) == 216
    wide = tall().mT.contiguous()
    assert total(lambda: torch.linalg.lu_factor(wide)) == 216


def test_solve_is_lu_and_two_triangular_solves_per_right_hand_side():
    """LU 144 + 2 n^2 per right-hand side: 3 columns 216, a vector 72."""
    a = square()
    b = torch.randn(6, 3, dtype=torch.float64)
    assert total(lambda: torch.linalg.solve(a, b)) == 144 + 216
    assert total(lambda: torch.linalg.solve(a, b[:, 0])) == 144 + 72
    assert total(lambda: torch.linalg.solve(a, b.mT, left=False)) == 144 + 216
    lu, pivots = torch.linalg.lu_factor(a)
    assert total(lambda: torch.linalg.lu_solve(lu, pivots, b)) == 216


def test_triangular_and_cholesky_solves():
    """Triangular: n^2 per column (3 * 36); with a Cholesky factor two of them (216)."""
    a, b = spd(), torch.randn(6, 3, dtype=torch.float64)
    factor = torch.linalg.cholesky(a)
    assert total(lambda: torch.linalg.solve_triangular(factor, b, upper=False)) == 108
    assert total(lambda: torch.cholesky_solve(b, factor)) == 216
    assert total(lambda: torch.cholesky_inverse(factor)) == 2 * N3 // 3


def test_inverse_determinant_and_log_determinant():
    """Inverse 2n^3 = 432; det: LU 144 + n = 150; slogdet: LU + 3n = 162."""
    a = square()
    assert total(lambda: torch.linalg.inv(a)) == 432
    assert total(lambda: torch.linalg.det(a)) == 150
    assert total(lambda: torch.linalg.slogdet(a)) == 162


def test_householder_qr_by_mode():
    """8 x 6: R 2mn^2 - 2n^3/3 = 576 - 144 = 432; the reduced Q as much again; the complete
    Q 4(m^2 n - m n^2 + n^3/3) = 4(384 - 288 + 72) = 672; the reflectors to Q (orgqr, k = n)
    agree with the QR count."""
    a = tall()
    assert total(lambda: torch.linalg.qr(a)) == 864
    assert total(lambda: torch.linalg.qr(a, mode="r")) == 432
    assert total(lambda: torch.linalg.qr(a, mode="complete")) == 432 + 672
    reflectors, tau = torch.geqrf(a)
    assert total(lambda: torch.geqrf(a)) == 432
    assert total(lambda: torch.linalg.householder_product(reflectors, tau)) == 432
    c = torch.randn(8, 3, dtype=torch.float64)
    # Q^T C from the left: 4mnk - 2nk^2 with m = 8, n = 3, k = 6
    assert total(lambda: torch.ormqr(reflectors, tau, c, transpose=True)) == 576 - 216


def test_symmetric_and_general_eigenvalues():
    """eigh: 9n^3 with vectors, 4n^3/3 without; eig: 25n^3, eigvals 10n^3."""
    a = spd()
    assert total(lambda: torch.linalg.eigh(a)) == 9 * N3
    assert RULES["aten._linalg_eigh"].fn((6, 6), "L", False) == 4 * N3 // 3
    # under any dispatch mode eigvalsh asks for the vectors too: counted as what runs
    assert total(lambda: torch.linalg.eigvalsh(a)) == 9 * N3
    b = square()
    assert total(lambda: torch.linalg.eig(b)) == 25 * N3
    assert RULES["aten.linalg_eigvals"].fn((6, 6)) == 10 * N3
    assert total(lambda: torch.linalg.eigvals(b)) == 25 * N3  # runs linalg_eig, as eigvalsh


def test_svd_values_thin_and_full():
    """8 x 6: values 4mn^2 - 4n^3/3 = 1152 - 288; thin 14mn^2 + 8n^3 = 4032 + 1728; full U
    4m^2 n + 8mn^2 + 9n^3 = 1536 + 2304 + 1944."""
    a = tall()
    assert RULES["aten._linalg_svd"].fn((8, 6), False, False) == 864
    # under any dispatch mode svdvals asks for U and V too: counted as what runs
    assert total(lambda: torch.linalg.svdvals(a)) == 5_760
    assert total(lambda: torch.linalg.svd(a, full_matrices=False)) == 5_760
    assert total(lambda: torch.linalg.svd(a)) == 5_784
    assert total(lambda: torch.linalg.svd(a.mT)) == 5_784  # wide: m and n swap


def test_least_squares_and_pseudo_inverse():
    """lstsq 8 x 6 with 2 columns: QR 432, Q^T B 4*8*6*2 - 2*36*2 = 240, solve 36*2 = 72.
    pinv 8 x 6: thin SVD 5,760, then 6 reciprocals, 36 scalings, 2*6*6*8 = 576."""
    a, b = tall(), torch.randn(8, 2, dtype=torch.float64)
    assert total(lambda: torch.linalg.lstsq(a, b)) == 432 + 240 + 72
    assert total(lambda: torch.linalg.pinv(a)) == 5_760 + 6 + 36 + 576


def test_batched_matrices_multiply_the_count():
    a = square(3, 2)
    assert total(lambda: torch.linalg.inv(a)) == 6 * 432


@pytest.mark.parametrize(
    "fn",
    [
        lambda a: torch.linalg.solve(a, a[..., :2]),
        torch.linalg.inv,
        lambda a: torch.linalg.cholesky(a @ a.mT + 6 * torch.eye(6, dtype=a.dtype)),
        lambda a: torch.linalg.qr(a)[0],
        lambda a: torch.linalg.eigh(a + a.mT)[1],
        lambda a: torch.linalg.svd(a)[1],
        torch.linalg.det,
    ],
    ids=["solve", "inv", "cholesky", "qr", "eigh", "svd", "det"],
)
def test_decomposition_backward_has_a_rule_for_every_op(fn):
    a = square().requires_grad_()
    r = count(lambda: fn(a).sum().backward())
    assert r.unknown_ops == {}
    assert r.backward_total > 0


def test_decompositions_on_meta_count_as_on_cpu():
    a = square()
    for fn in (torch.linalg.inv, torch.linalg.qr, torch.linalg.svd, torch.linalg.lu_factor):
        assert total(lambda fn=fn: fn(a.to("meta"))) == total(lambda fn=fn: fn(a))


@pytest.mark.filterwarnings("ignore:torch.(cholesky|triangular_solve) is deprecated")
def test_older_and_less_common_entry_points():
    """LDL (Bunch-Kaufman) n^3/3; the deprecated torch.cholesky n^3/3 and triangular_solve
    n^2 per column."""
    a, b = spd(), torch.randn(6, 3, dtype=torch.float64)
    assert total(lambda: torch.linalg.ldl_factor(a)) == N3 // 3
    assert total(lambda: torch.cholesky(a)) == N3 // 3
    upper = torch.triu(a)
    assert total(lambda: torch.triangular_solve(b, upper)) == 108
