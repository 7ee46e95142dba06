"""FPO rules for the less common ops real models run.

Histograms, GLU, CELU, log-add-exp, CTC loss, torchvision's RoI align and NMS, the
nested-tensor conversions of the transformer fast path, and the collectives of
``torch.distributed``. Pairwise distances, grid sampling and embedding bags have modules of
their own (:mod:`greenprint.fpo._rules_distance`, :mod:`greenprint.fpo._rules_grid_sample`,
:mod:`greenprint.fpo._rules_embedding`).

Conventions as in the other families: one FPO per arithmetic op, compare or elementary
function; reducing n elements costs n. Each rule's docstring derives its count. Where the work
depends on the data (valid CTC lengths, boxes NMS suppresses), shapes give the upper bound.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule, zero
from greenprint.fpo._rules_pointwise import _reads_elu, elu_fpo

__all__: list[str] = []


def _inplace(*names: str) -> list[str]:
    return [f"aten.{n}{suffix}" for n in names for suffix in ("", "_")]


# -- elementwise ------------------------------------------------------------------------------


@register_rule("aten.histc")
def histc_rule(
    self: tuple[int, ...], bins: int = 100, min: Any = 0, max: Any = 0, **kwargs: Any
) -> int:
    """5N, + 2N when ``min == max`` (the default: the data's min and max are found first).

    Per element: two compares (in range), subtract ``min``, scale by ``bins / (max - min)``,
    one add into the bin.
    """
    n = numel(self)
    return 5 * n + (2 * n if min == max else 0)


def _range_compares(n: int, given: Any) -> int:
    """2 compares per element (its min and max) when the range is not given."""
    return 0 if given else 2 * n


def _density(bins: list[int]) -> int:
    """``hist / (sum(hist) * bin widths)`` over ``H = prod(bins)`` cells.

    The sum ``H`` adds and one division ``H``; per dimension the bin widths (``bins_d``
    subtractions of the edges) and one division per cell ``H``. One dimension: ``4 bins``.
    """
    cells = math.prod(bins)
    return 2 * cells + sum(b + cells for b in bins)


def _search(edges: int) -> int:
    """Compares of a binary search among ``edges`` sorted edges: ``ceil(log2(edges + 1))``."""
    return max(1, math.ceil(math.log2(edges + 1)))


@register_rule("aten.histogram")
def histogram_rule(
    self: tuple[int, ...],
    bins: Any = 100,
    *args: Any,
    range: Any = None,
    weight: Any = None,
    density: bool = False,
    **kwargs: Any,
) -> int:
    """``torch.histogram``: every element binned, as ``histc`` (``5N``, + ``2N`` for the range).

    ``bins`` a count: per element two compares (in range), subtract the low edge, scale by
    ``bins / (max - min)``, one add into the bin (a weight adds its value: the same add).
    ``bins`` a tensor of ``E`` edges (any spacing): per element the two compares, a binary
    search ``ceil(log2(E + 1))`` compares, the add. The edges themselves are made like
    ``linspace`` (0, tensor creation). ``density``: :func:`_density`.
    """
    n = numel(self)
    if isinstance(bins, tuple):  # the bins_tensor overload: E edges
        count = len(bins) and bins[0]
        return n * (3 + _search(count)) + (_density([count - 1]) if density else 0)
    return 5 * n + _range_compares(n, range) + (_density([int(bins)]) if density else 0)


def _points(self: tuple[int, ...]) -> tuple[int, int]:
    """(points, dimensions) of ``histogramdd``'s ``(..., D)`` input."""
    d = self[-1] if self else 1
    return numel(self) // max(1, d), d


@register_rule("aten._histogramdd_bin_edges")
def histogramdd_bin_edges_rule(
    self: tuple[int, ...], bins: Any, *args: Any, range: Any = None, **kwargs: Any
) -> int:
    """The edges of ``histogramdd`` from bin counts.

    Each dimension's min and max when no range is given (2 compares per element), then
    ``linspace`` (0).
    """
    return _range_compares(numel(self), range)


@register_rule("aten._histogramdd_from_bin_cts")
def histogramdd_from_bin_cts_rule(
    self: tuple[int, ...],
    bins: Any,
    *args: Any,
    range: Any = None,
    weight: Any = None,
    density: bool = False,
    **kwargs: Any,
) -> int:
    """``histogramdd`` with bin counts.

    Per point and dimension as ``histc`` (two compares, subtract, scale: 4), one add per
    point; the range found again from the data when not given (2 compares per element: this
    op does it too); ``density`` :func:`_density`.
    """
    points, d = _points(self)
    counts = [int(b) for b in bins] if isinstance(bins, list) else [int(bins)] * d
    total = points * (4 * d + 1) + _range_compares(numel(self), range)
    return total + (_density(counts) if density else 0)


@register_rule("aten._histogramdd_from_bin_tensors")
def histogramdd_from_bin_tensors_rule(
    self: tuple[int, ...], bins: Any, *args: Any, density: bool = False, **kwargs: Any
) -> int:
    """``histogramdd`` with edge tensors.

    Per point and dimension two compares and a binary search among that dimension's ``E_d``
    edges (``ceil(log2(E_d + 1))``), one add per point; ``density`` :func:`_density` over
    ``E_d - 1`` bins.
    """
    points, _ = _points(self)
    edges = [e[0] if e else 1 for e in bins] if isinstance(bins, list) else []
    total = points * (sum(2 + _search(e) for e in edges) + 1)
    return total + (_density([e - 1 for e in edges]) if density else 0)


def _isin_uses_sorting(n: int, t: int) -> bool:
    """ATen's choice (numpy's heuristic): sort when ``t >= int(10 * n ** 0.145)``."""
    return t >= int(10.0 * float(n) ** 0.145)


def _sorted_compares(n: int) -> int:
    """Sorting ``n`` values (``n ceil(log2 n)``, as the sort rule) and comparing neighbours."""
    return n * max(1, math.ceil(math.log2(max(n, 2)))) + n


@register_rule("aten.isin")
def isin_rule(
    elements: Any, test_elements: Any, *args: Any, assume_unique: bool = False, **kwargs: Any
) -> int:
    """Equality compares (1 FPO each, on floating-point values; integer ids: 0).

    ``N`` elements against ``T`` test elements (a Python number is 1). Few test elements
    (``T < int(10 N^0.145)``, ATen's rule): each element against each test element, ``N T``
    (the loop stops at the first match: an upper bound). Otherwise ATen sorts: the unique
    values of each side (sort and neighbour compares, ``n ceil(log2 n) + n``, skipped with
    ``assume_unique``), then their concatenation is sorted and neighbours compared: counted
    at ``N + T`` values (fewer when values repeat: an upper bound).
    """
    n = numel(elements) if isinstance(elements, tuple) else 1
    t = numel(test_elements) if isinstance(test_elements, tuple) else 1
    if n == 0 or not _isin_uses_sorting(n, t):
        return n * t
    unique = 0 if assume_unique else _sorted_compares(n) + _sorted_compares(t)
    return unique + _sorted_compares(n + t)


@register_rule("aten.glu")
def glu_rule(self: tuple[int, ...], dim: int = -1, *, out_shape: Any = None, **kw: Any) -> int:
    """``a * (1 / (1 + exp(-b)))`` over the two halves: 5 per output element.

    ATen's kernel (``glu_kernel``): negate, exp, add, divide, multiply (2 in earlier versions,
    the sigmoid as one op).
    """
    return 5 * numel(first_shape(out_shape))


@register_rule("aten.glu_backward")
def glu_backward_rule(grad_output: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """9 per element of the output gradient ``g``, with ``s = sigmoid(b)``.

    ATen's ``glu_backward_cpu_out``: ``s`` by the sigmoid kernel (4), ``grad_a = s * g`` (1),
    ``grad_b = (1 - s) * s * a * g`` (``glu_backward_kernel``: 4). (6 in earlier versions, the
    sigmoid as one op.)
    """
    return 9 * numel(grad_output)


@register_rule(_inplace("celu"), reads=_reads_elu, reads_before=True)
def celu_rule(self: tuple[int, ...], *args: Any, negative: int | None = None, **kwargs: Any) -> int:
    """ELU with input scale ``1 / alpha``: ELU's count + 1.

    ``at::native::celu`` divides once (1), then runs ELU's vectorised kernel
    (``_rules_pointwise.elu_rule``: 2 per value, 5 in a vector with a lane below 0; on meta
    5). The backward is ``elu_backward``. It was 6 per value.
    """
    return elu_fpo(numel(self), negative) + 1


@register_rule(["aten.logaddexp", "aten.logaddexp2"])
def logaddexp_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``max(a, b) + log1p(exp(-|a - b|))``: 7 per element; base 2 alike.

    Max, subtract, abs, negate, exp, log1p, add.
    """
    return 7 * numel(first_shape(out_shape))


# -- CTC loss ---------------------------------------------------------------------------------

# (input length, target length, adjacent labels that differ, distinct labels) per sample
_CTCSample = tuple[int, int, int, int]


def _ctc_samples_of(targets: Any, input_lengths: Any, target_lengths: Any) -> list[_CTCSample]:
    """Each sample's lengths and labels, read from real tensors (or lists) of values."""
    inputs = [
        int(v)
        for v in (input_lengths.tolist() if hasattr(input_lengths, "tolist") else input_lengths)
    ]
    lengths = [
        int(v)
        for v in (target_lengths.tolist() if hasattr(target_lengths, "tolist") else target_lengths)
    ]
    rows = targets.tolist()
    samples, start = [], 0
    for b, (t_b, s_b) in enumerate(zip(inputs, lengths, strict=True)):
        if targets.dim() == 1:  # concatenated targets
            labels, start = rows[start : start + s_b], start + s_b
        else:
            labels = rows[b][:s_b]
        changes = sum(1 for k in range(1, len(labels)) if labels[k] != labels[k - 1])
        samples.append((t_b, s_b, changes, len(set(labels))))
    return samples


def _ctc_reads(
    log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, *a: Any, **k: Any
) -> dict[str, Any]:
    """The samples' lengths and labels (:func:`_ctc_samples_of`): ``{"samples": [...]}``."""
    return {"samples": _ctc_samples_of(targets, input_lengths, target_lengths)}


def _ctc_backward_reads(
    grad: Any,
    log_probs: Any,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    neg_log_likelihood: Any,
    log_alpha: Any,
    blank: Any = 0,
    zero_infinity: Any = False,
    *a: Any,
    **k: Any,
) -> dict[str, Any]:
    """As :func:`_ctc_reads`, less the samples whose gradient is filled with zeros.

    With ``zero_infinity`` a sample of infinite loss computes no gradient.
    """
    samples = _ctc_samples_of(targets, input_lengths, target_lengths)
    if zero_infinity:
        nll = neg_log_likelihood.tolist()
        samples = [s for s, v in zip(samples, nll, strict=True) if v != float("inf")]
    return {"samples": samples}


def _ctc_shape_samples(
    log_probs: tuple[int, ...], lattice: Any, input_lengths: Any, target_lengths: Any
) -> list[_CTCSample]:
    """Each sample's lengths and labels from shapes: an upper bound.

    The longest input and target for every sample (or the lengths given as lists), every two
    adjacent labels different.
    """
    batch = log_probs[1] if len(log_probs) == 3 else 1
    longest = (int(lattice[-1]) - 1) // 2 if lattice else 0
    inputs = input_lengths if isinstance(input_lengths, list) else [log_probs[0]] * batch
    lengths = target_lengths if isinstance(target_lengths, list) else [longest] * batch
    return [
        (int(t), int(s), max(int(s) - 1, 0), int(s)) for t, s in zip(inputs, lengths, strict=True)
    ]


def _ctc_row(s: int, changes: int) -> int:
    """One time step of the alpha (or beta) recursion over the ``2S + 1`` states.

    Per state ``log(exp(a1 - m) + exp(a2 - m) + exp(a3 - m)) + m + log_prob``: 3 subtractions,
    3 exps, 2 adds, log, 2 adds, and ``m == -inf``: 12; the compares that find ``m``, one
    for every state but the first and one more for each label state whose label differs
    from the one two states before (ATen's ``ctc_loss_cpu_template``).
    """
    return 12 * (2 * s + 1) + 2 * s + changes


@register_rule("aten._ctc_loss", reads=_ctc_reads)
def ctc_loss_rule(
    log_probs: tuple[int, ...],
    targets: Any,
    input_lengths: Any = None,
    target_lengths: Any = None,
    *args: Any,
    out_shape: Any = None,
    samples: list[_CTCSample] | None = None,
    **kw: Any,
) -> int:
    """The forward (alpha) recursion of ATen's CPU kernel, per sample.

    The first time step copies two log-probabilities; each later one of the sample's
    ``T_b - 1`` costs :func:`_ctc_row`; the loss ``-log(exp(l1 - m) + exp(l2 - m)) - m``
    over the two final states 10 (max, ``m == -inf``, 2 subtractions, 2 exps, add, log, add,
    negate; an empty target: the negation, 1). The lengths and labels are read from real
    tensors (the count is then exact); on meta every sample is taken at the longest input
    and target, adjacent labels different: an upper bound.
    """
    if samples is None:
        outs = out_shape if isinstance(out_shape, list) else [out_shape]
        lattice = tuple(outs[1]) if len(outs) > 1 and outs[1] is not None else ()
        samples = _ctc_shape_samples(log_probs, lattice, input_lengths, target_lengths)
    total = 0
    for t_b, s_b, changes, _ in samples:
        if t_b == 0:
            continue
        total += (t_b - 1) * _ctc_row(s_b, changes) + (10 if s_b else 1)
    return total


@register_rule("aten._ctc_loss_backward", reads=_ctc_backward_reads)
def ctc_loss_backward_rule(
    grad: tuple[int, ...],
    log_probs: tuple[int, ...],
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    neg_log_likelihood: Any,
    log_alpha: tuple[int, ...],
    *args: Any,
    samples: list[_CTCSample] | None = None,
    **kwargs: Any,
) -> int:
    """The beta recursion and the gradient of ATen's CPU kernel, per sample.

    The last time step adds alpha and beta for its two states (2; 1 for an empty target);
    each of the ``T_b - 1`` earlier ones costs :func:`_ctc_row`, + per state alpha + beta and
    the test ``lcab == -inf`` (2), + a log-add-exp into the class's sum (8: max, 2
    subtractions, 2 exps, add, log, add) for each state whose class an earlier state of the
    step already holds (``2S + 1`` states over ``1 + distinct labels`` classes); then per
    element of the sample's ``T_b x C`` gradient ``(exp(lp) - exp(lcab + nll - lp)) * g``, 6.
    The log-adds are an upper bound: while the class's sum is still ``-inf`` (states no path
    reaches yet, near the lattice's corners) the kernel assigns instead (about 3.5% of the
    backward for a sample of 200 steps and 40 labels); the rest is exact given the lengths
    and labels (on meta: the longest, every label distinct).
    """
    if samples is None:
        samples = _ctc_shape_samples(log_probs, tuple(log_alpha), input_lengths, target_lengths)
    classes = log_probs[-1]
    total = 0
    for t_b, s_b, changes, distinct in samples:
        if t_b == 0:
            continue
        states = 2 * s_b + 1
        repeats = states - (1 + distinct) if s_b else 0
        step = _ctc_row(s_b, changes) + 2 * states + 8 * repeats
        total += (2 if s_b else 1) + (t_b - 1) * step + 6 * t_b * classes
    return total


@register_rule("aten._cudnn_ctc_loss", reads=_ctc_reads)
def cudnn_ctc_loss_rule(
    log_probs: tuple[int, ...],
    targets: Any,
    input_lengths: Any = None,
    target_lengths: Any = None,
    *args: Any,
    out_shape: Any = None,
    samples: list[_CTCSample] | None = None,
    **kw: Any,
) -> int:
    """The loss and gradient of cuDNN's CTC in one call, as the CPU kernels count them.

    CUDA, float32, blank 0, lengths as lists: :func:`ctc_loss_rule` +
    :func:`ctc_loss_backward_rule` (cuDNN's own arithmetic is not published).
    """
    if samples is None:
        lattice = (2 * _longest_target(targets, target_lengths) + 1,)
        samples = _ctc_shape_samples(log_probs, lattice, input_lengths, target_lengths)
    forward = ctc_loss_rule(log_probs, targets, samples=samples)
    return forward + ctc_loss_backward_rule(
        (), log_probs, targets, input_lengths, target_lengths, None, (), samples=samples
    )


def _longest_target(targets: Any, target_lengths: Any) -> int:
    """The longest target, from the lengths when given as a list, else the targets' shape."""
    if isinstance(target_lengths, list) and target_lengths:
        return max(int(v) for v in target_lengths)
    return int(targets[-1]) if isinstance(targets, tuple) and targets else 0


register_rule("aten._use_cudnn_ctc_loss")(zero)


# -- torchvision detection ops ----------------------------------------------------------------

_ADAPTIVE_SAMPLES = 2  # sampling_ratio <= 0 samples ceil(roi size / bins): data, counted as 2


def _roi_align_fpo(
    rois: int, channels: int, pooled_height: int, pooled_width: int, sampling_ratio: int
) -> int:
    """RoI align, forward or backward: the same count (derived in the two rules' docstrings).

    ``8s + 1`` per output (or gradient) element, 16 per sample position, 8 per RoI, with
    ``s = sampling_ratio^2`` samples per bin (2 x 2 when adaptive).
    """
    per_dim = sampling_ratio if sampling_ratio > 0 else _ADAPTIVE_SAMPLES
    s = per_dim * per_dim
    bins = rois * pooled_height * pooled_width
    return bins * channels * (8 * s + 1) + bins * s * 16 + 8 * rois


@register_rule("torchvision.roi_align")
def roi_align_rule(
    input: tuple[int, ...],
    rois: tuple[int, ...],
    spatial_scale: Any,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int = -1,
    aligned: bool = False,
    **kwargs: Any,
) -> int:
    """``8s + 1`` per output element, 16 per sample position, 8 per RoI.

    Per element of the ``(K, C, PH, PW)`` output: ``s`` bilinear samples (4 multiplies, 3 adds)
    each added into the bin (1), one division; per sample position (shared by the channels):
    its coordinates (8) and the four weights (8); per RoI: scaling and bin sizes.
    ``s = sampling_ratio^2``; adaptive sampling (``sampling_ratio <= 0``) depends on the boxes
    and is counted as 2 x 2.
    """
    return _roi_align_fpo(rois[0], input[1], pooled_height, pooled_width, int(sampling_ratio))


@register_rule("torchvision._roi_align_backward")
def roi_align_backward_rule(
    grad: tuple[int, ...],
    rois: tuple[int, ...],
    spatial_scale: Any,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int = -1,
    aligned: bool = False,
    **kwargs: Any,
) -> int:
    """``8s + 1`` per gradient element; sample positions and RoIs as the forward.

    Per gradient element: one division, then per sample four weighted adds into the input
    gradient (8).
    """
    return _roi_align_fpo(rois[0], channels, pooled_height, pooled_width, int(sampling_ratio))


@register_rule("torchvision.nms")
def nms_rule(
    dets: tuple[int, ...], scores: tuple[int, ...], iou_threshold: Any, **kwargs: Any
) -> int:
    """Sort, areas, and the IoU of every pair of the ``N`` boxes (an upper bound).

    Sorting the scores: ``N ceil(log2 N)`` compares; the areas: 3 per box; the IoU of every
    pair: ``N (N - 1) / 2`` pairs (suppressed boxes are skipped, so this bounds the work), 13
    each: four max/min, two widths, two clamps, the intersection's product, the union's add and
    subtract, the division, the compare with the threshold.
    """
    n = dets[0]
    sort = n * max(1, math.ceil(math.log2(max(n, 2))))
    return sort + 3 * n + 13 * (n * (n - 1) // 2)


# -- 0 by rule: nested-tensor conversions (the transformer fast path), checks, diagonals,
# packing a padded batch for a recurrent layer (a gather of the real tokens; its backward and
# unpacking are composites of ops counted on their own), rotations, block diagonals and index
# tensors (copies and integer index math) -----------------------------------------------------

register_rule(
    [
        "aten._pack_padded_sequence",
        "aten.rot90",
        "aten.block_diag",
        "aten.tril_indices",
        "aten.triu_indices",
        "aten.nonzero_static",
        "aten.empty_permuted",
        "aten.slice_inverse",
        "aten._nested_tensor_from_mask",
        "aten._nested_tensor_from_mask_left_aligned",
        "aten.to_padded_tensor",
        "aten._nested_tensor_from_tensor_list",
        "aten._linalg_check_errors",
        "aten.diag_embed",
        "aten.diag",
        "aten.diagonal_copy",
        "aten._nested_view_from_jagged",
        "aten._nested_get_values",
        "aten._nested_get_offsets",
        "aten._nested_get_lengths",
        "aten._sparse_coo_tensor_with_dims_and_tensors",
        "aten._indices",
        "aten._values",
        "aten._coalesced_",
    ]
)(zero)


# -- collectives ------------------------------------------------------------------------------

#: Collectives (``torch.distributed``: DDP's gradient all-reduce, FSDP's gathers and scatters,
#: functional collectives) move tensors between processes: 0 FPO by rule, as data movement.
#: A summing all-reduce of ``n`` elements across ``W`` processes also adds, ``(W - 1) n`` in
#: all, in the communication backend (NCCL, gloo): for a DDP step that is about one add per
#: parameter, against ``6 N`` per example for the training itself (under a sixth of a percent
#: at batch size 1 per process), and not counted, as by FlopCounterMode and every counter
#: compared in BENCHMARKS.md. DDP's division of the summed gradients by ``W`` is an op of
#: its own and counted. Before this rule they were ops without a rule, which made the FPO of
#: any training counted in a DDP process a lower bound.
COLLECTIVES: tuple[str, ...] = (
    *(
        f"c10d.{op}"
        for op in (
            "broadcast_", "allreduce_", "allreduce_coalesced_", "allgather_", "_allgather_base_",
            "allgather_coalesced_", "allgather_into_tensor_coalesced_", "reduce_scatter_",
            "_reduce_scatter_base_", "reduce_scatter_tensor_coalesced_", "reduce_", "gather_",
            "scatter_", "alltoall_", "alltoall_base_", "barrier", "monitored_barrier_", "send",
            "recv_", "recv_any_source_",
        )
    ),
    *(
        f"_c10d_functional.{op}"
        for op in (
            "all_reduce", "all_reduce_", "all_reduce_coalesced", "all_reduce_coalesced_",
            "all_gather_into_tensor", "all_gather_into_tensor_out",
            "all_gather_into_tensor_coalesced", "reduce_scatter_tensor",
            "reduce_scatter_tensor_coalesced", "all_to_all_single", "broadcast", "broadcast_",
            "wait_tensor",
        )
    ),
)  # fmt: skip

register_rule(list(COLLECTIVES))(zero)
