"""FPOCounter: a TorchDispatchMode that counts the FPO of every aten op, per op and per module.

Every op that reaches the dispatcher below autograd passes through :class:`_CountingMode`:
forward ops, the backward ops autograd runs, and optimizer updates. Ops are looked up in a copy
of the rules registry; an op with a CompositeImplicitAutograd kernel is decomposed first, as
FlopCounterMode does, so both see the same ops and ``matmul_total`` stays equal to its total.

Module attribution, forward and backward: global module hooks keep a stack of the modules
running forward and record, for each module call, the interval of autograd sequence numbers its
forward created. In the backward pass the op's autograd node (``_current_autograd_node``) gives
its sequence number, hence the module call that created it, hence the chain of enclosing module
names. Parameter-gradient accumulation is attributed to the parameter's module.

Activation checkpointing (``torch.utils.checkpoint``, reentrant or not) re-runs part of the
forward inside the backward pass: those ops count as backward and, separately, as
``recompute``; a module re-run there is charged to its enclosing modules and to the model
(``by_module[""]`` stays the total), as it was in the forward. Nodes made in the backward
pass (the reentrant checkpoint's re-made graph, a ``create_graph=True`` backward's graph of
the gradient) are charged, when a later backward runs them, to the chain of the node that
made them (see :mod:`greenprint.fpo._module_chains`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

from greenprint._exceptions import FPOError, FPOInputError, UnknownOpError
from greenprint.fpo import _complex, _rules_quantized, _rules_quantized_base, _rules_spectral
from greenprint.fpo import rules as _rules  # noqa: F401  (loads the built-in rule families)
from greenprint.fpo._counting_mode import NOBODY, _CountingMode, counted_alone
from greenprint.fpo._module_chains import _ModuleChains, _uncompiled
from greenprint.fpo._no_dynamo import no_dynamo_import
from greenprint.fpo._op_args import (
    _INT8_KERNELS,
    _engine_decides,
    _has_values,
    _needs_input_grad,
    _on_meta,
    _quantized,
    _reads_metadata,
    _shapes,
)
from greenprint.fpo._optimizer_steps import _OptimizerSteps
from greenprint.fpo._registry import ASSUMED, Rule, merged_rules
from greenprint.fpo._result import PHASES, FPOResult
from greenprint.fpo._rules_quantized_base import QNNPACK_INT8, QNNPACK_INT8_COUNTED
from greenprint.fpo._torch_switches import (
    _eager_flex_attention,
    _quiet_compile_hooks_warning,
    _remove_filter,
    _restore_flex_attention,
)

__all__ = ["FPOCounter"]

logger = logging.getLogger(__name__)

_aten = torch.ops.aten
_CIA = torch._C.DispatchKey.CompositeImplicitAutograd
# Rules that count real FPO on complex data (the FFTs); the common arithmetic ops on complex
# tensors are counted in real FPO by greenprint.fpo._complex, the others as if real and listed
# in FPOResult.complex_ops.
_REAL_ON_COMPLEX = frozenset({"aten._fft_c2c", "aten._fft_r2c", "aten._fft_c2r"})
_ON_QUANTIZED = _rules_quantized.ON_QUANTIZED
_EMPTY = _aten.empty.memory_format
# what unknown_ops lists for a legacy int8 linear seen by its allocations (_legacy_int8_linear)
_LEGACY_INT8_LINEAR = "aten.fbgemm_linear_int8_weight_fp32_activation"


@dataclass(frozen=True)
class _OpInfo:
    name: str  # "aten.mm": the packet, the by_op key
    rule: Rule | None
    decompose: bool


class FPOCounter(_ModuleChains, _OptimizerSteps):
    """Count the FPO of everything that runs inside a ``with`` block (a context manager).

    Works on real, meta and FakeTensor tensors. Not re-entrant; entering again starts a new
    count. The counts are read from :attr:`result` (or the shortcut properties) after the block.

    Args:
        model: the model whose submodules name the ``by_module`` keys (``""`` is the model,
            then ``"layer1.0.conv1"``) and whose parameters are counted in ``params``. Without
            it, modules are named by class (``"Linear"``, ``"Sequential.0"``).
        strict: raise :class:`greenprint.UnknownOpError` on the first op with no rule.
        rules: per-instance overrides, op -> formula (``{"aten.mm": fn}``); merged into a copy
            of the registry, which is never mutated.

    Raises:
        FPOInputError: ``model`` is not a ``torch.nn.Module`` (a function is counted with
            ``FPOCounter()`` around its call, or :func:`~greenprint.count_fpo`).

    Example::

        model = torch.nn.Linear(4, 3)
        with gp.FPOCounter(model) as c:
            model(torch.randn(2, 4)).sum().backward()
        c.total, c.by_module, c.result.table()
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        *,
        strict: bool = False,
        rules: Mapping[Any, Any] | None = None,
    ) -> None:
        if model is not None and not isinstance(model, torch.nn.Module):
            raise FPOInputError(
                f"FPOCounter(model) takes a torch.nn.Module, whose submodules name the counts, "
                f"not {type(model).__name__} {model!r:.60}; to count a function, use "
                "FPOCounter() without one, or count_fpo(function, *inputs)"
            )
        self._model = model
        self.strict = strict
        self._rules = merged_rules(dict(rules) if rules else None)
        self._info: dict[Any, _OpInfo] = {}
        self._mode: _CountingMode | None = None
        self._handles: list[Any] = []
        self._quiet: Any = None
        self._no_dynamo: Any = None
        self._reset()

    # -- results ------------------------------------------------------------------------------

    @property
    def result(self) -> FPOResult:
        """The counts so far, as an :class:`FPOResult`."""
        by_op_phase = {op: dict(zip(PHASES, v, strict=True)) for op, v in self._op.items()}
        by_module_phase = {
            m: {"forward": v[0], "backward": v[1], "recompute": v[2]}
            for m, v in self._module.items()
        }
        phase_totals = [sum(v[i] for v in self._op.values()) for i in range(3)]
        return FPOResult(
            total=sum(phase_totals),
            forward_total=phase_totals[0],
            backward_total=phase_totals[1],
            optimizer_total=phase_totals[2],
            recompute_total=self._recompute,
            matmul_total=self._matmul,
            params=self._params(),
            trainable_params=self._params(trainable=True),
            by_op={op: sum(v) for op, v in self._op.items()},
            by_module={m: v[0] + v[1] for m, v in self._module.items()},  # recompute in v[1]
            unknown_ops=dict(self._unknown),
            calls=dict(self._calls),
            by_op_phase=by_op_phase,
            by_module_phase=by_module_phase,
            complex_ops=dict(self._complex),
            assumptions=self._assumptions(),
        )

    def _assumptions(self) -> dict[str, str]:
        """What the counts assumed (:attr:`FPOResult.assumptions`).

        The FFT library, when an FFT op was counted: the one its input ran on (``cufft`` for a
        CUDA tensor, else the build's CPU library), ``+``-joined when both ran. cuDNN's grid
        sampler, when ``cudnn_grid_sampler`` (or its backward) was counted: its kernel is closed
        source, so it is counted as ATen's CUDA ``grid_sampler_2d`` kernel, which computes the
        same result (bilinear, zeros padding, ``align_corners=True``). ``meta_device`` (``"cpu"``)
        when an op whose count depends on the device (upsampling, grid sampling, an FFT: their
        rules read the device) ran on meta tensors, which have none: counted as the CPU's
        kernels. And what a rule's reader said its count assumed (``reads`` returning
        :data:`~greenprint.fpo._registry.ASSUMED`): ``onednn_int8`` when an int8 linear or
        convolution ran on oneDNN's kernels, counted as FBGEMM's; a name assumed with two
        values reads both, ``+``-joined and sorted.
        """
        assumptions: dict[str, str] = {}
        if self._fft_libraries:
            assumptions["fft_library"] = "+".join(sorted(self._fft_libraries))
        if self._cudnn_grid_sampler:
            assumptions["cudnn_grid_sampler"] = _CUDNN_GRID_SAMPLER
        if self._meta_as_cpu:
            assumptions["meta_device"] = "cpu"
        for name, values in self._assumed.items():
            assumptions[name] = "+".join(sorted(values))
        return assumptions

    @property
    def total(self) -> int:
        """All FPO counted so far."""
        return self.result.total

    @property
    def forward_total(self) -> int:
        """FPO outside the backward pass and optimizer steps."""
        return self.result.forward_total

    @property
    def backward_total(self) -> int:
        """FPO inside the backward pass."""
        return self.result.backward_total

    @property
    def matmul_total(self) -> int:
        """The matrix-multiply and convolution part (see :attr:`FPOResult.matmul_total`)."""
        return self._matmul

    @property
    def recompute_total(self) -> int:
        """The part of the backward that re-ran forward ops (activation checkpointing)."""
        return self._recompute

    @property
    def by_op(self) -> dict[str, int]:
        """Op -> FPO."""
        return self.result.by_op

    @property
    def by_module(self) -> dict[str, int]:
        """Dotted module name -> FPO (nested, forward and backward)."""
        return self.result.by_module

    @property
    def unknown_ops(self) -> dict[str, int]:
        """Op -> calls, for the ops with no rule (not counted)."""
        return dict(self._unknown)

    @property
    def complex_ops(self) -> dict[str, int]:
        """Op -> calls, for the ops on complex tensors counted as if real (too low)."""
        return dict(self._complex)

    @property
    def params(self) -> int:
        """Parameter count of the model (or of the top-level modules that ran)."""
        return self._params()

    @property
    def trainable_params(self) -> int:
        """How many of :attr:`params` require a gradient (what a fine-tuning trains)."""
        return self._params(trainable=True)

    def table(self, *, by: str = "module", depth: int | None = None) -> str:
        """The result as a readable table (see :meth:`FPOResult.table`)."""
        return self.result.table(by=by, depth=depth)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (see :meth:`FPOResult.to_dict`)."""
        return self.result.to_dict()

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> FPOCounter:
        if self._mode is not None:
            raise FPOError("FPOCounter is already active (it is not re-entrant)")
        self._reset()
        from torch.nn.modules import module as nn_module
        from torch.optim import optimizer as optim_module

        self._handles = [
            nn_module.register_module_forward_pre_hook(self._pre_hook),
            nn_module.register_module_forward_hook(self._post_hook, always_call=True),
            optim_module.register_optimizer_step_pre_hook(self._optimizer_pre_hook),
            optim_module.register_optimizer_step_post_hook(self._optimizer_post_hook),
        ]
        self._quiet = _quiet_compile_hooks_warning()
        self._flex = _eager_flex_attention()
        self._no_dynamo = no_dynamo_import()  # meta kernels and optimizers: see _no_dynamo
        self._no_dynamo.__enter__()
        self._mode = _CountingMode(self)
        self._mode.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        mode, self._mode = self._mode, None
        try:
            if mode is not None:
                mode.__exit__(exc_type, exc, tb)
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles = []
            quiet, self._quiet = self._quiet, None
            _remove_filter(quiet)
            flex, self._flex = self._flex, None
            _restore_flex_attention(flex)
            no_dynamo, self._no_dynamo = self._no_dynamo, None
            if no_dynamo is not None:
                no_dynamo.__exit__(None, None, None)
        if self._unknown and exc_type is None:
            logger.warning(
                "%d op(s) have no FPO rule and were not counted: %s",
                len(self._unknown),
                ", ".join(f"{op} x{n}" for op, n in sorted(self._unknown.items())),
            )
        if self._complex and exc_type is None:
            logger.warning(
                "%d op(s) ran on complex tensors and are counted as if real (too low): %s",
                len(self._complex),
                ", ".join(f"{op} x{n}" for op, n in sorted(self._complex.items())),
            )

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the ops of the block under phase ``name`` ("optimizer" for a hand-written update).

        Args:
            name: "forward", "backward" or "optimizer".

        Yields:
            Nothing; ops inside the block count towards the phase.

        Raises:
            FPOError: an unknown phase.
        """
        if name not in PHASES:
            raise FPOError(f"unknown phase {name!r}; expected one of {PHASES}")
        previous, self._forced_phase = self._forced_phase, PHASES.index(name)
        try:
            yield
        finally:
            self._forced_phase = previous

    # -- state --------------------------------------------------------------------------------

    _op: dict[str, list[int]]  # op -> FPO per phase
    _module: dict[str, list[int]]  # module -> [forward, backward, recompute] FPO
    _calls: dict[str, int]
    _unknown: dict[str, int]
    _complex: dict[str, int]  # op -> calls on complex tensors, counted as if real
    _matmul: int
    _recompute: int  # backward FPO that re-ran forward ops (activation checkpointing)
    _forced_phase: int | None
    _before: dict[str, Any] | None  # what a reads_before rule read for the op running now
    _fft_libraries: set[str]  # the FFT libraries the counted FFT ops ran on
    _cudnn_grid_sampler: bool  # whether cuDNN's grid sampler (counted as ATen's CUDA one) ran
    _meta_as_cpu: bool  # whether an op whose count depends on the device ran on meta tensors
    _assumed: dict[str, set[str]]  # what the rules' readers said their counts assumed

    def _reset(self) -> None:
        self._op = {}
        self._module = {}
        self._calls = {}
        self._fft_libraries = set()
        self._cudnn_grid_sampler = False
        self._meta_as_cpu = False
        self._assumed = {}
        self._unknown = {}
        self._complex = {}
        self._matmul = 0
        self._recompute = 0
        self._forced_phase = None
        self._optimizer_depth = 0
        self._stack = []
        self._intervals = []
        self._starts = []
        self._names = {}
        self._taken = set()
        self._param_chain = {}
        self._top = {}
        self._in_model = set()
        self._last_seq = -1
        self._last_chain = ()
        self._made_starts = []
        self._made = []
        self._seen = torch._C._autograd._get_sequence_nr()
        self._thread = threading.get_ident()
        self._before = None
        self._allocated: list[int] | None = None
        if self._model is not None:
            root = _uncompiled(self._model)
            if root is not self._model:  # torch.compile's wrapper: the model, named ""
                self._names[self._model] = ""
            self._name_tree(root, "")
            self._in_model = {id(m) for m in self._model.modules() if m is not self._model}

    def _params(self, *, trainable: bool = False) -> int:
        """The parameter count (shared parameters once); ``trainable``: those needing a gradient."""
        roots = [self._model] if self._model is not None else list(self._top)
        seen: dict[int, int] = {}
        for root in roots:
            for p in root.parameters():
                if p.requires_grad or not trainable:
                    seen[id(p)] = p.numel()
        return sum(seen.values())

    # -- counting -----------------------------------------------------------------------------

    def _legacy_int8_linear(self, allocated: Any, args: Any, kwargs: Any) -> None:
        """Note a legacy int8 linear in :attr:`FPOResult.unknown_ops`, from its allocations.

        ``fbgemm_linear_int8_weight_fp32_activation`` is a composite op (autograd splits it
        before the counter sees it) whose kernel calls FBGEMM directly, on raw pointers, so it
        reaches the counter only as the allocation of its float output and then of its int32
        buffer, both of the output's size, in C++ (a Python ``torch.empty`` passes
        ``pin_memory``). The legacy quantized RNN cells
        (``torch.quantized_lstm_cell``, ``quantized_gru_cell``, ``quantized_rnn_tanh_cell``,
        ``quantized_rnn_relu_cell``) run two of them each. Its float work (quantizing the input,
        scaling the int32 sums and adding the bias) is not counted: listed as an op with no
        rule, the count is a lower bound and says so.
        """
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        if getattr(device, "type", None) != "cpu" or not args:
            return
        size = list(args[0])
        if dtype == torch.float32:
            self._allocated = size  # perhaps its output; the buffer comes next
        elif dtype == torch.int32 and allocated == size:
            self._unknown[_LEGACY_INT8_LINEAR] = self._unknown.get(_LEGACY_INT8_LINEAR, 0) + 1
            if self.strict:
                raise UnknownOpError(
                    f"no FPO rule for {_LEGACY_INT8_LINEAR} (strict=True): a legacy int8 "
                    "linear, which calls FBGEMM directly (the counter sees only its allocations)"
                )

    def _op_info(self, func: Any) -> _OpInfo:
        info = self._info.get(func)
        if info is None:
            packet = str(func._overloadpacket)
            rule = self._rules.get(str(func)) or self._rules.get(packet)
            decompose = func is not torch.ops.prim.device.default and (
                _CIA in func.py_kernels
                or torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), _CIA)
            )
            info = _OpInfo(packet, rule, decompose)
            self._info[func] = info
        return info

    def _count(self, func: Any, info: _OpInfo, args: Any, kwargs: Any, out: Any) -> None:
        in_backward = torch._C._current_graph_task_id() != -1
        self._note_made(in_backward)
        name, rule = info.name, info.rule
        allocated, self._allocated = self._allocated, None
        if func is _EMPTY and "pin_memory" not in kwargs:  # allocated by C++ code
            self._legacy_int8_linear(allocated, args, kwargs)
        if rule is None:
            self._unknown[name] = self._unknown.get(name, 0) + 1
            if self.strict:
                raise UnknownOpError(
                    f"no FPO rule for {func} (strict=True); register one with "
                    "greenprint.fpo.register_rule"
                )
            return
        self._calls[name] = self._calls.get(name, 0) + 1
        entry = self._op.get(name)
        if entry is None:
            entry = self._op[name] = [0, 0, 0]
        on_quantized = _ON_QUANTIZED.get(name)
        if on_quantized is not None and _quantized(args):
            rule = on_quantized  # the QuantizedCPU kernel's float steps, not the float kernel's
        if rule.is_zero:
            return
        floating = [False, False]  # any floating (or complex) tensor; any complex tensor
        s_args = _shapes(args, floating)
        s_kwargs = {k: _shapes(v, floating) for k, v in kwargs.items()}
        s_out = _shapes(out, floating)
        if rule.grad_mask:
            s_kwargs["needs_input_grad"] = _needs_input_grad()
        before, self._before = self._before, None
        try:
            if before is not None:
                s_kwargs.update(before)
            elif (
                rule.reads is not None
                and not rule.reads_before
                and (_reads_metadata(rule.reads) or _has_values(args, kwargs))
            ):
                with counted_alone(NOBODY):  # the reader's ops: no counter's (an outer one's)
                    s_kwargs.update(rule.reads(*args, **kwargs))
            assumed = s_kwargs.pop(ASSUMED, None)
            value = rule.fn(*s_args, out_shape=s_out, **s_kwargs)
            if assumed:
                for assumed_name, assumed_value in dict(assumed).items():
                    self._assumed.setdefault(str(assumed_name), set()).add(str(assumed_value))
            if (
                not self._meta_as_cpu
                and (name.startswith("aten._fft_") or getattr(rule.reads, "reads_device", False))
                and _on_meta(args, kwargs)
            ):
                self._meta_as_cpu = True  # counted as the CPU's kernels: the result says so
            if name.startswith("aten._fft_"):
                self._fft_libraries.add(s_kwargs.get("backend") or _rules_spectral.fft_backend())
            elif name.startswith("aten.cudnn_grid_sampler"):
                self._cudnn_grid_sampler = True
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as e:
            raise FPOError(f"the FPO rule for {func} failed: {type(e).__name__}: {e}") from e
        # complex tensors: real FPO per FPO the rule counts (0: not known, counted as if real)
        real_fpo, real_other = 1, 1
        if floating[1] and name not in _REAL_ON_COMPLEX:
            if rule.matmul and name in _complex.PRODUCTS:
                real_fpo, real_other = _complex.PRODUCTS[name](args)
            elif not rule.matmul and name in _complex.ELEMENTWISE:
                real_fpo = _complex.ELEMENTWISE[name](args)
            else:
                real_fpo = real_other = 0
        if rule.matmul:
            products, other = value
            self._matmul += int(products)  # FlopCounterMode's 2mkn, complex or not
            fpo = int(products) * (real_fpo or 1) + int(other) * (real_other or 1)
        else:
            counts = floating[0] or rule is on_quantized or name.startswith(_INT8_KERNELS)
            fpo = int(value) * (real_fpo or 1) if counts else 0
        if not fpo:
            return
        if _engine_decides(name, rule is on_quantized) and _rules_quantized_base.qnnpack_engine():
            self._assumed.setdefault(QNNPACK_INT8, set()).add(QNNPACK_INT8_COUNTED)
        if not real_fpo:
            self._complex[name] = self._complex.get(name, 0) + 1
        if self._forced_phase is not None:
            phase = self._forced_phase
        elif self._optimizer_depth:
            phase = 2
        elif in_backward:
            phase = 1
        else:
            phase = 0
        entry[phase] += fpo
        if phase == 0:
            chain = self._intervals[self._stack[-1]].chain if self._stack else ()
        elif phase == 1:
            chain = self._backward_chain()
        else:
            return
        column = 0 if phase == 0 else 1
        recompute = (
            phase == 1
            and self._forced_phase is None
            and torch.is_grad_enabled()
            and self._recomputing()
        )
        if recompute:
            self._recompute += fpo
        modules = self._module
        for module_name in chain:
            row = modules.get(module_name)
            if row is None:
                row = modules[module_name] = [0, 0, 0]
            row[column] += fpo
            if recompute:
                row[2] += fpo

    def _read_before(self, func: Any, info: _OpInfo, args: Any, kwargs: Any) -> None:
        """Keep what a ``reads_before`` rule reads from the op's inputs before the op runs.

        An in-place op changes its inputs: ``embedding_renorm_`` scales the rows over
        ``max_norm``, after which none is; so its rule reads them first. Kept in
        ``self._before`` for :meth:`_count` of the same op (None for every other op).
        """
        rule = info.rule
        self._before = None
        if rule is None or rule.reads is None or not rule.reads_before:
            return
        if not _has_values(args, kwargs):
            return
        try:
            with counted_alone(NOBODY):  # the reader's ops: no counter's (an outer one's)
                self._before = dict(rule.reads(*args, **kwargs))
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as e:
            raise FPOError(f"the FPO rule for {func} failed: {type(e).__name__}: {e}") from e

    def _recomputing(self) -> bool:
        """Whether the op running in backward (with grad enabled) re-runs a forward.

        True inside a module's forward, inside the reentrant checkpoint's backward node, or
        under the non-reentrant checkpoint's recomputation hooks; False for the backward ops of
        ``create_graph=True`` (which also run with grad enabled).
        """
        if self._stack:
            return True
        node = torch._C._current_autograd_node()
        if node is not None and node.name().endswith("CheckpointFunctionBackward"):
            return True
        hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
        pack = getattr(hooks[0], "__qualname__", "") if hooks else ""
        return pack.startswith("_recomputation_hook.")


_CUDNN_GRID_SAMPLER = "counted as ATen's CUDA grid_sampler_2d kernel (cuDNN's is closed source)"
"""What :attr:`FPOResult.assumptions` says of ``cudnn_grid_sampler`` (and its backward)."""
