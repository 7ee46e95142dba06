"""The result of an FPO count: totals, per op, per module, and the ops with no rule."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from greenprint._exceptions import FPOInputError
from greenprint._format import _give_missing, count_of, format_fpo

__all__ = ["PHASES", "FPOResult"]

PHASES = ("forward", "backward", "optimizer")

#: The share of a model's layer weights at 0 from which the table says they were multiplied
#: (pruned models; a trained dense model has next to none, an embedding's padding row aside).
ZERO_SHARE = 0.01
"""The phases an op can run in: outside autograd's backward, inside it, in an optimizer step."""


@dataclass(frozen=True)
class FPOResult:
    """Floating-point operations (FPO) counted for a model or a block of code.

    Every count is in FPO (each floating-point ADD and MUL, see :mod:`greenprint.fpo` for the
    conventions). Treat the dicts as read-only.

    Attributes:
        total: all FPO, every phase, every step (``forward + backward + optimizer``).
        forward_total: FPO outside autograd's backward pass (and outside optimizer steps).
        backward_total: FPO inside the backward pass (``recompute_total`` included).
        optimizer_total: FPO inside ``torch.optim`` optimizer steps.
        matmul_total: the matrix-multiply and convolution part: the ops FlopCounterMode counts
            (mm, bmm, addmm/baddbmm products, convolutions, fused attention), with its formulas
            except where they are wrong. Equal to its total on the same code, except a grouped
            convolution's backward, where torch 2.13 and 2.14 count grad_weight ``groups``
            times (see docs/fpo.md).
        recompute_total: the part of ``backward_total`` that re-ran forward ops: the cost of
            activation checkpointing (``torch.utils.checkpoint``); 0 without it.
        params: parameter count of the model (shared parameters once), frozen ones included.
        trainable_params: how many of them require a gradient (shared once): what a
            fine-tuning trains (LoRA's adapters, a head over a frozen backbone); ``None`` for a
            result made without a model to read it from.
        by_op: op (``"aten.mm"``) -> FPO; ops that ran and count 0 (data movement by rule,
            integer-only arithmetic) are listed with 0.
        by_module: dotted module name -> FPO of everything that ran inside it, forward and
            backward, nested (a parent includes its children); ``""`` is the model itself.
        unknown_ops: op -> number of calls, for ops with no rule; they are NOT in the totals.
        calls: op -> number of calls, for every op with a rule.
        by_op_phase: op -> {"forward": FPO, "backward": FPO, "optimizer": FPO}.
        by_module_phase: module -> {"forward": FPO, "backward": FPO, "recompute": FPO}
            (recompute is part of backward).
        steps: how many identical steps the counts cover (see :func:`training_fpo`).
        complex_ops: op -> number of calls, for ops that ran on complex tensors and are
            counted as if real (one FPO per complex element, where in real FPO even a complex
            add is 2): the counts of these ops are too low. The FFTs and the common arithmetic
            (multiply, add, divide, sums, products: see ``greenprint.fpo._complex``) are
            counted in real FPO and are not listed.
        assumptions: what a count assumed that the ops' shapes do not say, name -> value;
            empty when nothing was assumed. ``"fft_library"`` (``"mkl"``, ``"pocketfft"``,
            ``"cufft"``, or two ``+``-joined) when an FFT op was counted: the library its
            input ran on (cuFFT for a CUDA tensor, else the CPU FFT library of the torch build
            that counted; meta tensors: the build's CPU library), which decides how an
            ``rfft``'s normalisation is counted (MKL, cuFFT: 2 per one-sided complex value;
            pocketfft: 1 per real input value; see docs/fpo.md). A count made on another
            build can differ there. ``"cudnn_grid_sampler"`` when cuDNN's grid sampler (or
            its backward) was counted: its kernel is closed source, so it is counted as ATen's
            CUDA ``grid_sampler_2d`` kernel, which computes the same result (the value says
            so); cuDNN's own count can differ.
            ``"meta_device"`` (``"cpu"``) when an op whose count depends on the device
            (upsampling, grid sampling, an FFT) ran on meta tensors, which have no device: it
            was counted as the CPU's kernels run it (count on real or fake tensors of a
            device for that device's kernels). ``"onednn_int8"`` when an int8 linear or
            convolution ran on oneDNN's kernels (the ``onednn`` quantized engine; the ``x86``
            engine's convolutions with symmetric weights on an AVX-512 VNNI CPU): it was
            counted as FBGEMM runs it (the value says so), and oneDNN's float epilogue differs
            (not derived: see docs/fpo.md). ``"qnnpack_int8"`` when int8 ops whose kernel the
            quantized engine picks (linears, convolutions, elementwise ops, pooling; not the
            embeddings) were counted while ``torch.backends.quantized.engine`` was
            ``"qnnpack"``: they were counted as the x86 kernels run them (the value says so),
            and QNNPACK's own differ (not derived).
        weights: entries of the model's layer weights (each module's ``weight`` tensor of 2 or
            more dimensions: linear, convolution, embedding), shared ones once, read by
            :func:`count_fpo` on a real model; ``None`` when not read (meta or fake tensors, a
            function, a live :class:`FPOCounter`).
        zero_weights: how many of them are exactly 0 (pruned), ``None`` likewise. They are
            counted as dense kernels run them: a zero weight's products are multiplied and
            added as any other's (a sparse kernel would skip them; ``greener.compare``'s *FPO
            executed* counts that), and the table says so.
        backward_counted: whether a backward pass was counted. ``False`` for a forward-only
            count (``count_fpo(..., backward=False)``, ``greenprint fpo`` without
            ``--backward``) in which no backward ran: ``backward_total``, ``recompute_total``
            and the per-op and per-module backward are then 0 only because nothing was
            counted, so the tables leave their backward column out and read ``backward   not
            counted``, and :meth:`to_dict` writes ``null`` for them. ``True`` for every other
            count (an :class:`FPOCounter` counts whatever backward runs inside it, 0 when
            none does).
    """

    total: int
    forward_total: int
    backward_total: int
    matmul_total: int
    params: int
    by_op: dict[str, int]
    by_module: dict[str, int]
    unknown_ops: dict[str, int]
    optimizer_total: int = 0
    recompute_total: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    by_op_phase: dict[str, dict[str, int]] = field(default_factory=dict)
    by_module_phase: dict[str, dict[str, int]] = field(default_factory=dict)
    steps: int = 1
    complex_ops: dict[str, int] = field(default_factory=dict)
    trainable_params: int | None = None
    assumptions: dict[str, str] = field(default_factory=dict)
    weights: int | None = None
    zero_weights: int | None = None
    backward_counted: bool = True

    @property
    def forward_by_module(self) -> dict[str, int]:
        """Module -> forward FPO."""
        return {m: p.get("forward", 0) for m, p in self.by_module_phase.items()}

    @property
    def backward_by_module(self) -> dict[str, int]:
        """Module -> backward FPO."""
        return {m: p.get("backward", 0) for m, p in self.by_module_phase.items()}

    @property
    def recompute_by_module(self) -> dict[str, int]:
        """Module -> FPO of its forward re-run in backward (activation checkpointing)."""
        return {m: p.get("recompute", 0) for m, p in self.by_module_phase.items()}

    @property
    def zero_ops(self) -> list[str]:
        """The ops that ran and count 0 FPO.

        Data movement is 0 by rule (views, copies, indexing, embedding lookup, cat, creation),
        and so is arithmetic on integer or boolean tensors only. Ops with no rule are not here
        but in :attr:`unknown_ops`.
        """
        return [op for op, fpo in self.by_op.items() if fpo == 0]

    def times(self, steps: int) -> FPOResult:
        """The counts of ``steps`` identical repetitions of what was counted.

        Args:
            steps: number of repetitions (>= 1).

        Returns:
            A new result with every count multiplied and ``steps`` set.

        Raises:
            FPOInputError: steps is not a positive integer.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise FPOInputError(f"steps must be a positive integer, got {steps!r}")

        def mul(d: dict[str, int]) -> dict[str, int]:
            return {k: v * steps for k, v in d.items()}

        return replace(
            self,
            total=self.total * steps,
            forward_total=self.forward_total * steps,
            backward_total=self.backward_total * steps,
            optimizer_total=self.optimizer_total * steps,
            recompute_total=self.recompute_total * steps,
            matmul_total=self.matmul_total * steps,
            by_op=mul(self.by_op),
            by_module=mul(self.by_module),
            unknown_ops=mul(self.unknown_ops),
            calls=mul(self.calls),
            by_op_phase={k: mul(v) for k, v in self.by_op_phase.items()},
            by_module_phase={k: mul(v) for k, v in self.by_module_phase.items()},
            steps=self.steps * steps,
            complex_ops=mul(self.complex_ops),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (counts in FPO, exact integers).

        A forward-only count (``backward_counted`` false) writes ``null`` for what was not
        counted: ``backward_total``, ``recompute_total`` and each op's and module's
        ``backward`` (and ``recompute``), never 0.
        """
        counted = self.backward_counted

        def phases(by: dict[str, dict[str, int]]) -> dict[str, dict[str, int | None]]:
            not_counted = () if counted else ("backward", "recompute")
            return {
                k: {p: None if p in not_counted else n for p, n in v.items()} for k, v in by.items()
            }

        return {
            "unit": "FPO",
            "total": self.total,
            "forward_total": self.forward_total,
            "backward_counted": counted,
            "backward_total": self.backward_total if counted else None,
            "optimizer_total": self.optimizer_total,
            "recompute_total": self.recompute_total if counted else None,
            "matmul_total": self.matmul_total,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "steps": self.steps,
            "by_op": dict(self.by_op),
            "by_module": dict(self.by_module),
            "unknown_ops": dict(self.unknown_ops),
            "calls": dict(self.calls),
            "by_op_phase": phases(self.by_op_phase),
            "by_module_phase": phases(self.by_module_phase),
            "complex_ops": dict(self.complex_ops),
            "assumptions": dict(self.assumptions),
            "weights": self.weights,
            "zero_weights": self.zero_weights,
        }

    def table(self, *, by: str = "module", depth: int | None = None) -> str:
        """A readable table, per module or per op, with a summary.

        Args:
            by: ``"module"`` (nested, indented) or ``"op"``.
            depth: for ``by="module"``, the deepest nesting shown (0: the model only).

        Returns:
            The table as text.

        Raises:
            FPOInputError: ``by`` is not "module" or "op", or depth is negative.
        """
        if by not in ("module", "op"):
            raise FPOInputError(f"by must be 'module' or 'op', got {by!r}")
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 0
        ):
            raise FPOInputError(f"depth must be a whole number >= 0, got {depth!r}")
        rows = self._module_rows(depth) if by == "module" else self._op_rows()
        lines = _align(rows)
        lines.append("")
        lines.extend(self._summary())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _pct(self, value: int, tenths: int | None = None) -> str:
        if tenths is not None:  # apportioned: see _apportion
            return f"{tenths / 10:.1f}%"
        return f"{100 * value / self.total:.1f}%" if self.total else "-"

    def _module_rows(self, depth: int | None) -> list[list[str]]:
        """One row per module, then the rows that make the shares add up to the total.

        Under a module whose submodules are shown, ``(own ops)`` is what it ran itself (the
        arithmetic in its ``forward`` outside its submodules: attention scores, residual adds,
        a functional activation), so that each module's row is the sum of the rows under it.
        After the model, ``(outside the model)`` is what ran outside it (a loss, code around
        the call) and ``(optimizer)`` the optimizer steps: the rows' totals sum to the total.
        """
        # with activation checkpointing, a column for the forward re-run inside backward
        recompute = self.recompute_total > 0
        # a forward-only count leaves the backward column out: its 0s were never counted
        backward = self.backward_counted
        header = ["module", "forward", "backward", "total", "share"]
        rows = [header[:3] + ["recompute"] + header[3:] if recompute else header]
        if not backward:
            rows[0].remove("backward")

        # each row's share in tenths of a percent, the rows under a row apportioned its share,
        # so that they add up to it as their FPO do (each rounded alone, the docs' example
        # model's eight modules read 100.1%)
        tenths: dict[Any, int] = {}

        def share_out(units: int | None, parts: list[tuple[Any, int]], whole: int) -> None:
            if units is not None and whole > 0 and sum(fpo for _, fpo in parts) == whole:
                split = _apportion(units, [fpo for _, fpo in parts])
                tenths.update(zip([key for key, _ in parts], split, strict=True))

        def row(label: str, phases: dict[str, int] | None, fpo: int, key: Any) -> list[str]:
            def cell(phase: str) -> str:
                return "-" if phases is None else format_fpo(phases.get(phase, 0))

            share = self._pct(fpo, tenths.get(key))
            cells = [label, cell("forward"), cell("backward"), format_fpo(fpo), share]
            if recompute:
                cells.insert(3, cell("recompute"))
            if not backward:
                del cells[2]
            return cells

        children = _children(list(self.by_module))
        below_some = {c for below in children.values() for c in below}
        top = [name for name in self.by_module if name not in below_some]
        rest = self.total - self.optimizer_total - sum(self.by_module[name] for name in top)
        share_out(
            1000,
            [(name, self.by_module[name]) for name in top]
            + ([("(outside)", rest)] if rest > 0 else [])
            + ([("(optimizer)", self.optimizer_total)] if self.optimizer_total else []),
            self.total,
        )
        for name in _tree_order(top, children):
            fpo = self.by_module[name]
            level = 0 if name == "" else name.count(".") + 1
            if depth is not None and level > depth:
                continue
            label = "  " * level + (name.rsplit(".", 1)[-1] if name else "(model)")
            rows.append(row(label, self.by_module_phase.get(name, {}), fpo, name))
            below = children.get(name, [])
            shown = [c for c in below if depth is None or c.count(".") + 1 <= depth]
            if shown:
                phases = _minus(self.by_module_phase.get(name, {}), below, self.by_module_phase)
                own = fpo - sum(self.by_module[c] for c in below)
                share_out(
                    tenths.get(name),
                    [(c, self.by_module[c]) for c in shown]
                    + ([(("own", name), own)] if own > 0 else []),
                    fpo,
                )
                if own > 0:
                    indent = "  " * (min(c.count(".") + 1 for c in shown))
                    rows.append(row(indent + "(own ops)", phases, own, ("own", name)))
        # the modules with no module above them: the model, or (no model given) those named
        # by class
        outside = {
            "forward": self.forward_total,
            "backward": self.backward_total,
            "recompute": self.recompute_total,
        }
        outside = _minus(outside, top, self.by_module_phase)
        if rest > 0:
            label = "(outside the model)" if "" in self.by_module else "(outside any module)"
            rows.append(row(label, outside, rest, "(outside)"))
        if self.optimizer_total:
            rows.append(row("(optimizer)", None, self.optimizer_total, "(optimizer)"))
        return rows

    def _op_rows(self) -> list[list[str]]:
        rows = [["op", "calls", "forward", "backward", "optimizer", "total", "share"]]
        ops = [(op, fpo) for op, fpo in sorted(self.by_op.items(), key=lambda kv: -kv[1]) if fpo]
        counted = sum(fpo for _, fpo in ops)
        # the shares add up to 100.0% as the ops' FPO add up to the total (else each alone)
        tenths = _apportion(1000, [fpo for _, fpo in ops]) if counted == self.total else None
        for k, (op, fpo) in enumerate(ops):
            phase = self.by_op_phase.get(op, {})
            rows.append(
                [
                    op,
                    str(self.calls.get(op, 0)),
                    format_fpo(phase.get("forward", 0)),
                    format_fpo(phase.get("backward", 0)),
                    format_fpo(phase.get("optimizer", 0)),
                    format_fpo(fpo),
                    self._pct(fpo, None if tenths is None else tenths[k]),
                ]
            )
        # columns of what was not counted (a forward-only count's backward) or did not run
        # (no optimizer step: the summary and the module table leave it out too) are left out
        drop = {3} if not self.backward_counted else set()
        drop |= {4} if not self.optimizer_total else set()
        return [[cell for i, cell in enumerate(row) if i not in drop] for row in rows]

    def _summary(self) -> list[str]:
        lines = [
            f"total      {format_fpo(self.total)} ({self.total:,} FPO)",
            f"forward    {format_fpo(self.forward_total)}",
            f"backward   {format_fpo(self.backward_total)}"
            if self.backward_counted
            else "backward   not counted (a forward-only count)",
        ]
        if self.recompute_total:
            lines.append(
                f"recompute  {format_fpo(self.recompute_total)} (of backward: the forward "
                "re-run by activation checkpointing)"
            )
        if self.optimizer_total:
            lines.append(f"optimizer  {format_fpo(self.optimizer_total)}")
        lines.append(
            f"matmul     {format_fpo(self.matmul_total)} (matrix products and convolutions: "
            "FlopCounterMode's part)"
        )
        trainable = self.trainable_params
        frozen = trainable is not None and trainable != self.params
        trained = f" ({trainable:,} trainable)" if frozen else ""
        lines.append(f"params     {self.params:,}{trained}")
        if self.zero_weights and self.weights and self.zero_weights >= ZERO_SHARE * self.weights:
            lines.append(
                f"zeros      {self.zero_weights:,} of {self.weights:,} layer weights are 0 "
                f"({self.zero_weights / self.weights:.0%}): counted as dense kernels run them, "
                "zeros multiplied (a sparse kernel would skip their products: "
                "greener.compare's FPO executed)"
            )
        if self.steps != 1:
            lines.append(f"steps      {self.steps:,}")
        zero = self.zero_ops
        if zero:
            shown = ", ".join(sorted(zero)[:6]) + (", ..." if len(zero) > 6 else "")
            lines.append(f"0 FPO      {count_of(len(zero), 'op')} ({shown})")
        if self.unknown_ops:
            listed = ", ".join(f"{op} x{n}" for op, n in sorted(self.unknown_ops.items()))
            lines.append(f"NO RULE    {listed} (not counted)")
        if self.complex_ops:
            listed = ", ".join(f"{op} x{n}" for op, n in sorted(self.complex_ops.items()))
            lines.append(
                f"COMPLEX    {listed} (ops on complex tensors counted as if real, 1 FPO per "
                "complex element; too low)"
            )
        for key, value in sorted(self.assumptions.items()):
            if key == "fft_library":
                names = {"mkl": "MKL", "pocketfft": "pocketfft", "cufft": "cuFFT"}
                name = " and ".join(names.get(one, one) for one in value.split("+"))
                lines.append(
                    f"FFT        counted as {name} runs it (an rfft's normalisation differs "
                    "between libraries: MKL and cuFFT scale the one-sided output, pocketfft its "
                    "packed values)"
                )
            elif key == "meta_device":
                lines.append(
                    f"DEVICE     meta tensors, counted as the {value.upper()} kernels run them "
                    "(upsampling, grid sampling and FFTs count by device; count on the device's "
                    "tensors, or FakeTensorMode ones of it, for its kernels)"
                )
            elif key == "onednn_int8":
                lines.append(
                    "INT8       int8 linears or convolutions ran on oneDNN's kernels, counted as "
                    "FBGEMM runs them (oneDNN's float epilogue differs, not derived; weights "
                    "packed under torch.backends.quantized.engine = 'fbgemm' run FBGEMM's)"
                )
            elif key == "qnnpack_int8":
                lines.append(
                    "INT8       int8 ops ran under the qnnpack engine, counted as the x86 "
                    "kernels (FBGEMM's, ATen's) run them (QNNPACK's float work differs, not "
                    "derived; set torch.backends.quantized.engine = 'x86' or 'fbgemm' before "
                    "quantizing for the kernels counted)"
                )
            else:
                lines.append(f"ASSUMED    {key}: {value}")
        return lines


def _apportion(units: int, parts: list[int]) -> list[int]:
    """``units`` split in proportion to ``parts``, the units left over to the largest remainders.

    Hamilton's method in exact integers, so that the shares add up to ``units`` (tenths of a
    percent each rounded alone read 1,001 of 1,000); equal parts keep equal shares
    (:func:`greenprint._format.percent_shares` says how).

    Example:
        >>> _apportion(1000, [14417920, 2228592, 262144, 163840, 28442624, 131072, 131328, 15520])
        [315, 49, 6, 3, 621, 3, 3, 0]
        >>> _apportion(1000, [7208960, 262144, 131072, 131072, 9502720, 65536, 65792, 5200])
        [415, 15, 8, 8, 547, 4, 4, 0]
        >>> _apportion(1000, [1, 1, 1])
        [333, 333, 333]
    """
    whole = sum(parts)
    if whole <= 0:
        return [0] * len(parts)
    floors = [units * part // whole for part in parts]
    # a remainder as a fraction of whole: exact, one value for equal parts
    remainders = [units * part % whole / whole for part in parts]
    _give_missing(floors, units - sum(floors), remainders, parts)
    return floors


def _children(names: list[str]) -> dict[str, list[str]]:
    """Module -> the modules directly under it among ``names``.

    A module whose parent has no entry counts under its nearest listed ancestor.
    """
    listed = set(names)
    out: dict[str, list[str]] = {}
    for name in names:
        if name == "":
            continue
        parent = name
        while True:
            parent = parent.rsplit(".", 1)[0] if "." in parent else ""
            if parent in listed or parent == "":
                break
        if parent in listed:
            out.setdefault(parent, []).append(name)
    return out


def _tree_order(top: list[str], children: dict[str, list[str]]) -> list[str]:
    """The modules depth first, each under its parent.

    ``by_module`` lists a module when it first runs an op: an embedding whose only FPO are in
    the backward comes last there.
    """
    order: list[str] = []
    stack = list(reversed(top))
    while stack:
        name = stack.pop()
        order.append(name)
        stack.extend(reversed(children.get(name, [])))
    return order


def _minus(
    phases: dict[str, int], below: list[str], by_phase: dict[str, dict[str, int]]
) -> dict[str, int]:
    """A module's FPO per phase less those of the modules under it."""
    return {
        key: value - sum(by_phase.get(c, {}).get(key, 0) for c in below)
        for key, value in phases.items()
    }


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out
