"""The dense embedding backward against a port of ATen's CPU kernel that counts every
operation (audit s36).

``embedding_dense_backward_cpu`` (torch 2.13, ``native/Embedding.cpp``): per index that is not
``padding_idx``, ``double scale = 1.0; if (scale_grad_by_freq) scale /= counts[k];`` then
``grad_weight[k].add_(grad[i], scale)``: ``D`` adds, ``D`` more multiplies when the rows are
scaled (``add``'s ``alpha`` of 1 is not counted, as everywhere), and the division per index.
The port computes with :class:`Counted` floats; the weight's gradient equals torch's and the
count equals the counter's (padding read from the indices; on meta every index counts). Before
s36 the division per index was not counted.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402


def port(ids, grad, num_weights, padding_idx, scale_grad_by_freq):
    flat = ids.reshape(-1).tolist()
    rows = grad.reshape(len(flat), -1).tolist()
    counts: dict[int, int] = {}
    for k in flat:
        counts[k] = counts.get(k, 0) + 1
    weight_grad = [[0.0] * len(rows[0]) for _ in range(num_weights)]
    Counted.ops = 0
    for k, row in zip(flat, rows, strict=True):
        if k == padding_idx:
            continue
        if scale_grad_by_freq:
            scale = Counted(1.0) / counts[k]
            weight_grad[k] = [w + scale * g for w, g in zip(weight_grad[k], row, strict=True)]
        else:
            weight_grad[k] = [w + Counted(g) for w, g in zip(weight_grad[k], row, strict=True)]
    return weight_grad, Counted.ops


@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_backward_equals_the_ported_kernel(scale_grad_by_freq, padding_idx):
    torch.manual_seed(6)
    ids = torch.tensor([[1, 2, 2, 0], [3, 0, 2, 5]])
    embedding = torch.nn.Embedding(
        7, 3, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq
    ).double()
    grad = torch.randn(2, 4, 3, dtype=torch.float64)
    embedding(ids).backward(grad)
    values, expected = port(
        ids, grad, 7, -1 if padding_idx is None else padding_idx, scale_grad_by_freq
    )
    assert torch.allclose(embedding.weight.grad, torch.tensor(values, dtype=torch.float64))
    embedding.weight.grad = None
    with gp.FPOCounter() as c:
        embedding(ids).backward(grad)
    assert c.result.by_op["aten.embedding_dense_backward"] == expected
    if padding_idx is None:  # on meta the same (no index to skip)
        meta = torch.nn.Embedding(7, 3, scale_grad_by_freq=scale_grad_by_freq, device="meta")
        r = gp.count_fpo(meta, ids.to("meta"))
        assert r.by_op["aten.embedding_dense_backward"] == expected
