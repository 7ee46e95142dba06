"""The techniques :func:`~greenprint.greener.compare` applies: one small :class:`Variant` each.

Which PyTorch API each uses, and why (torch 2.13 on CPU; ``torchao`` is not required):

* ``dynamic_int8``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear`` (int8 weights,
  activations quantized on the fly; the fbgemm/x86 or qnnpack kernels run on any CPU).
* ``static_int8``: FX graph mode post-training quantization
  (``torch.ao.quantization.quantize_fx.prepare_fx``/``convert_fx`` with the default qconfig
  mapping of the active quantized engine, ``x86`` on Intel/AMD, ``qnnpack`` on ARM), calibrated on
  the inputs given; a model FX cannot trace is skipped with the reason. torch 2.13 marks
  ``torch.ao.quantization`` deprecated in favour of torchao, which is not needed here: the
  eager/FX APIs still run on CPU, and torchao's int8 CPU path needs its own wheel.
* ``prune_unstructured``/``prune_structured``: ``torch.nn.utils.prune`` (L1 magnitude of single
  weights, or Ln norm of whole output channels), optionally fine-tuned with the masks in place,
  then made permanent (``prune.remove``). Zeros are still stored and multiplied by PyTorch's
  dense kernels: the table shows the FPO a sparse kernel would execute beside the dense FPO.
* ``half_precision``: the model cast to ``bfloat16`` or ``float16``, its floating inputs cast on
  the way in and its outputs cast back to float32 (many CPUs have no fast fp16 or bf16 path: the
  measured latency shows it).
* ``distilled``, ``smaller``: a smaller model instead (:mod:`greenprint.greener._students`).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from greenprint._exceptions import ConfigError, GreenprintError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "Applied",
    "Context",
    "TrainingCost",
    "Variant",
    "VariantSkipped",
    "dynamic_int8",
    "half_precision",
    "prune_structured",
    "prune_unstructured",
    "quiet_torch_ao",
    "static_int8",
    "output_layers",
    "training_costs",
    "weighted_modules",
]

logger = logging.getLogger(__name__)


class VariantSkipped(GreenprintError):
    """A technique does not apply to this model or machine (the row says why)."""


class TrainingCost(Protocol):
    """Anything with a recorded cost (a run, a run record, a DistillResult)."""

    @property
    def energy_kwh(self) -> float: ...

    @property
    def emissions_kg(self) -> float: ...


@dataclass(frozen=True)
class Context:
    """What a technique may use besides the model: inputs, calibration data, run options.

    Attributes:
        example_inputs: one batch of positional inputs.
        calibration: batches of positional inputs for static quantization.
        track: opens a run nested in the variant's (``track(name, step)``), for training
            done by a technique (distillation, fine-tuning); its cost is the variant's.
        ledger: the ledger the comparison records into (``False``: in memory).
        study: the study it records into.
        region: the comparison's grid region (``None``: as configured), for training runs a
            technique opens itself (as :func:`~greenprint.greener.distill`'s).
        pue: the comparison's PUE (``None``: as configured), likewise.
        fpo: FPO of the training runs a technique opened (appended by it), counted into the
            variant's run, which contains them: each an int, or the
            :class:`~greenprint.FPOResult` of its count, whose ops with no rule (a lower
            bound) and assumptions (:attr:`~greenprint.FPOResult.assumptions`: the FFT
            library) the variant's and the comparison's runs then say too.
    """

    example_inputs: tuple[Any, ...]
    calibration: tuple[tuple[Any, ...], ...]
    track: Callable[[str, str], AbstractContextManager[Any]]
    ledger: Any = None
    study: str | None = None
    region: str | None = None
    pue: Any = None
    fpo: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    """A technique's output.

    Attributes:
        model: the variant, ready for inference.
        float_twin: the float model with the same weights and architecture (before int8
            conversion or a dtype cast) whose FPO are counted; ``None``: ``model`` itself.
        int8_modules: names (in ``float_twin``) of the modules whose products int8 kernels run.
        training: the runs (or results) that spent the variant's extra training energy.
        notes: caveats shown with the row.
    """

    model: Any
    float_twin: Any = None
    int8_modules: frozenset[str] = frozenset()
    training: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    """A greener variant of a model: a name, a technique and the function that makes it.

    ``apply(model, context)`` receives a deep copy of the compared model (it may change it in
    place) and returns an :class:`Applied`; it raises :class:`VariantSkipped` when the technique
    does not apply (the row says why). Build variants with the factories
    (:func:`dynamic_int8`, :func:`prune_unstructured`...) or your own ``Variant``.

    Attributes:
        name: the row's name (unique within a comparison).
        technique: the technique's identifier (``"dynamic-int8"``...).
        description: what it does, in words.
        apply: the function that makes the variant.
    """

    name: str
    technique: str
    description: str
    apply: Callable[[Any, Context], Applied] = field(repr=False)


@contextmanager
def quiet_torch_ao() -> Any:
    """Silence torch.ao.quantization's deprecation and observer warnings (the docs say why)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor")
        yield


def weighted_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` and convolution modules of ``model``, by qualified name.

    In the order ``named_modules()`` gives them, the order the model *defines* them, which says
    nothing about the order they run in (a head may be defined before the body): use
    :func:`output_layers` to find the layers that make the output.
    """
    from torch import nn

    kinds = (nn.Linear, nn.modules.conv._ConvNd)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def output_layers(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[tuple[str, ...], str]:
    """The linear and convolution layers that make ``model``'s output, and how they were found.

    One forward of ``inputs`` in eval mode (no running statistics updated) with the weights
    requiring gradients (restored after): autograd's graph is walked back from every tensor of
    the output, and each path stops at the first linear or convolution layer's output it
    meets. Those layers' outputs reach the model's output without passing through another
    weighted layer (a classifier; several heads; a layer added back by a residual too), in
    whatever order the model defines them. Where the output does not trace back to any layer
    (computed under ``no_grad``, detached, integer, an output whose tensors cannot be found:
    :func:`greenprint.fpo._api.output_tensors`, as a count back-propagates from them; or
    ``compare`` run under ``torch.inference_mode``), the last layer *run* is
    taken instead, and the second value says so.

    Args:
        model: the model, put in eval mode.
        inputs: one batch of positional inputs.

    Returns:
        The layers' names (in definition order), and how they were found, in words for the
        row's notes (none, and ``""``, when no weighted layer ran on the inputs).
    """
    import torch

    from greenprint.fpo._api import output_tensors

    layers = weighted_modules(model)
    made: dict[int, str] = {}  # id of the autograd node of a layer's output -> the layer
    nodes: list[Any] = []  # the nodes, alive while their ids are keys
    ran: list[str] = []

    def hook(_m: Any, _i: Any, out: Any, key: str) -> None:
        ran.append(key)
        node = out.grad_fn if isinstance(out, torch.Tensor) else None
        if node is not None:
            made[id(node)] = key
            nodes.append(node)

    handles = [
        module.register_forward_hook(lambda m, i, o, key=name: hook(m, i, o, key))
        for name, module in layers
    ]
    # the weights' autograd flags, set so that every layer's output has a node (frozen weights
    # left the output with no graph to walk), restored after
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        for p, _ in flags:
            if p.is_leaf and (p.is_floating_point() or p.is_complex()):
                p.requires_grad_(True)
        with torch.enable_grad(), quiet_torch_ao():
            out = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags:
            if p.is_leaf:
                p.requires_grad_(flag)
    found: set[str] = set()
    stack: list[Any] = [t.grad_fn for t in output_tensors(out)]  # None where it has none
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in made:  # a layer's output: the layers before it make its input only
            found.add(made[id(node)])
            continue
        stack.extend(parent for parent, _ in node.next_functions)
    if found:
        names = tuple(n for n, _ in layers if n in found)
        return names, "traced back from the output through autograd"
    if ran:
        return (ran[-1],), (
            "the last linear or convolution layer run on the example inputs: the output does "
            "not trace back to a layer through autograd"
        )
    return (), ""


def training_costs(items: Iterable[Any]) -> tuple[float, float, tuple[str, ...]]:
    """Sum ``energy_kwh`` and ``emissions_kg`` of runs or results; their ids (``id``/``run_id``).

    Raises:
        ConfigError: an item without a finite ``energy_kwh``.
    """
    kwh = kg = 0.0
    ids = []
    for item in items:
        energy = getattr(item, "energy_kwh", None)
        co2 = getattr(item, "emissions_kg", 0.0)
        if isinstance(energy, bool) or not isinstance(energy, (int, float)):
            raise ConfigError(
                f"training cost {item!r} has no energy_kwh: give runs, run records or "
                "DistillResult objects"
            )
        if not math.isfinite(energy) or energy < 0:
            raise ConfigError(f"training cost {item!r} has energy_kwh {energy!r}")
        kwh += float(energy)
        kg += float(co2) if isinstance(co2, (int, float)) and math.isfinite(co2) else 0.0
        run_id = getattr(item, "run_id", None) or getattr(item, "id", None)
        if isinstance(run_id, str):
            ids.append(run_id)
    return kwh, kg, tuple(ids)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a variant name must be a non-empty string, not {name!r}")
    return name.strip()


def _check_amount(amount: object) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ConfigError(f"amount must be a fraction in (0, 1), not {amount!r}")
    if not 0.0 < float(amount) < 1.0:
        # a percentage given for a fraction (50 for half) is the likely slip: say which it means
        hint = f" (for {amount:g}% give {amount / 100:g})" if 1.0 < float(amount) < 100.0 else ""
        raise ConfigError(f"amount must be a fraction in (0, 1), not {amount!r}{hint}")
    return float(amount)


def _check_norm(n: object) -> float:
    """The order of the norm ranking channels: a number > 0 (``math.inf`` too), not NaN.

    torch takes a string order ('fro', 'x') or NaN without a word and fails, or ranks the
    channels by nothing, only once the comparison has measured the baseline.
    """
    if isinstance(n, bool) or not isinstance(n, (int, float)) or math.isnan(n) or n <= 0:
        raise ConfigError(
            "n must be the order of the norm that ranks the channels, a number > 0 "
            f"(1: L1, 2: L2, math.inf: the largest magnitude), not {n!r}"
        )
    return n


def _check_module(label: str, model: object) -> None:
    """Refuse a model that is not an ``nn.Module`` (a ``state_dict``, a path).

    Checked when the variant is made, not once the comparison has measured the baseline.
    """
    from greenprint._imports import require

    require("torch", extra="torch", purpose="greenprint.greener")
    from torch import nn

    if not isinstance(model, nn.Module):
        hint = ": build the model and load_state_dict() it first" if isinstance(model, dict) else ""
        raise ConfigError(f"{label} must be a torch.nn.Module, not {type(model).__name__}{hint}")


def _check_batches(data: object) -> None:
    """Refuse distillation data that is visibly empty (a list or tuple with no batch)."""
    if isinstance(data, (list, tuple)) and not data:
        raise ConfigError("distilled got no batches: data is empty")


def _check_fine_tune(fine_tune: object) -> Callable[[Any], Any] | None:
    if fine_tune is not None and not callable(fine_tune):
        raise ConfigError(f"fine_tune must be a function taking the model, not {fine_tune!r}")
    return fine_tune  # type: ignore[return-value]


# ---------------------------------------------------------------------------- quantization
def dynamic_int8(*, name: str = "dynamic-int8") -> Variant:
    """Dynamic int8 quantization of every ``nn.Linear`` (``quantize_dynamic``).

    Weights are stored as int8; activations are quantized on the fly per batch. Convolutions
    stay in float (PyTorch has no dynamic int8 convolution).
    """

    def apply(model: nn.Module, ctx: Context) -> Applied:
        import torch
        from torch import nn

        layers = weighted_modules(model)
        linears = frozenset(n for n, m in layers if isinstance(m, nn.Linear))
        convolutions = len(layers) - len(linears)
        if not linears:
            raise VariantSkipped("the model has no nn.Linear layer to quantize dynamically")
        if torch.backends.quantized.engine == "none":
            raise VariantSkipped("no quantized engine on this CPU (torch.backends.quantized)")
        model.eval()
        twin = copy.deepcopy(model)
        with quiet_torch_ao():
            from torch.ao.quantization import quantize_dynamic

            quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        return Applied(
            model=quantized,
            float_twin=twin,
            int8_modules=linears,
            # said where there is one: an MLP's row read it too
            notes=(
                (
                    f"its {convolutions} convolution(s) stay float (PyTorch has no dynamic int8 "
                    "convolution)",
                )
                if convolutions
                else ()
            ),
        )

    return Variant(
        _check_name(name),
        "dynamic-int8",
        "torch.ao quantize_dynamic: nn.Linear weights int8, activations quantized per batch",
        apply,
    )


def static_int8(*, name: str = "static-int8", calibration_batches: int | None = None) -> Variant:
    """Static post-training int8 quantization, FX graph mode, calibrated.

    Observers are inserted with the default qconfig mapping of the active quantized engine
    (``torch.backends.quantized.engine``: ``x86`` on most PCs, ``qnnpack`` on ARM), the
    calibration batches are run through it, and it is converted to int8 kernels. A model that
    FX cannot trace (data-dependent control flow) is skipped with the tracer's reason.

    Args:
        name: the row's name.
        calibration_batches: at most this many calibration batches (default: all given to
            :func:`~greenprint.greener.compare`, else its example inputs).
    """
    if calibration_batches is not None and (
        isinstance(calibration_batches, bool)
        or not isinstance(calibration_batches, int)
        or calibration_batches < 1
    ):
        # a list of batches given here (the name reads like it) printed every tensor in it
        given = (
            repr(calibration_batches)
            if isinstance(calibration_batches, (int, float, str, type(None)))
            else f"a {type(calibration_batches).__name__}"
        )
        raise ConfigError(
            f"calibration_batches must be an integer >= 1 (how many of the calibration "
            f"batches to use), not {given[:60]}; give the batches themselves to "
            f"compare(..., calibration=[...])"
        )

    def apply(model: nn.Module, ctx: Context) -> Applied:
        import torch

        engine = torch.backends.quantized.engine
        if engine == "none" or engine not in torch.backends.quantized.supported_engines:
            raise VariantSkipped(f"no quantized engine for static int8 on this CPU ({engine!r})")
        weighted = frozenset(n for n, _ in weighted_modules(model))
        if not weighted:
            raise VariantSkipped("the model has no linear or convolution layer to quantize")
        model.eval()
        twin = copy.deepcopy(model)
        batches = ctx.calibration[:calibration_batches] if calibration_batches else ctx.calibration
        with quiet_torch_ao():
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

            try:
                prepared = prepare_fx(
                    model, get_default_qconfig_mapping(engine), tuple(ctx.example_inputs)
                )
            except Exception as e:  # FX tracing of user code fails in many ways: skip, say why
                logger.debug("prepare_fx failed", exc_info=True)
                raise VariantSkipped(
                    f"FX graph mode cannot trace this model ({type(e).__name__}: "
                    f"{_first_line(e)}); static int8 needs a traceable model"
                ) from e
            with torch.inference_mode():
                for batch in batches:
                    prepared(*batch)
            converted = convert_fx(prepared)
        return Applied(
            model=converted,
            float_twin=twin,
            int8_modules=weighted,
            notes=(f"{engine} engine, calibrated on {len(batches)} batch(es)",),
        )

    return Variant(
        _check_name(name),
        "static-int8",
        "torch.ao FX post-training static int8 (weights and activations), calibrated",
        apply,
    )


# -------------------------------------------------------------------------------- pruning
def _fine_tune(
    ctx: Context, model: nn.Module, fine_tune: Callable[[Any], Any] | None
) -> tuple[Any, ...]:
    if fine_tune is None:
        return ()
    from greenprint.fpo import FPOCounter

    with ctx.track("fine-tune", "fine-tune") as run:
        model.train()
        with FPOCounter() as counter:  # the training's FPO, backward and optimizer included
            fine_tune(model)
        model.eval()
        run.add_fpo(counter.result)  # a lower bound, said so, when ops had no rule
        # the count, not its total: the variant's run is a lower bound when this run is one,
        # and assumed what it assumed (an FFT library)
        ctx.fpo.append(counter.result)
    return (run,)


def _made_permanent(
    ctx: Context, model: nn.Module, layers: list[Any], hook: Any, *notes: str
) -> Applied:
    """Fine-tune a pruned model (if asked), then make its layers' pruning masks permanent."""
    from torch.nn.utils import prune

    training = _fine_tune(ctx, model, hook)
    for _, module in layers:
        prune.remove(module, "weight")
    model.eval()
    return Applied(model=model, training=training, notes=notes)


def _percent(share: float) -> str:
    """``share`` in percent as exactly as it was given: 0.125 -> ``"12.5"``, 0.3 -> ``"30"``.

    Read from the shortest decimal that gives the float back (``repr``), so no binary rounding
    shows (``0.07 * 100`` is 7.000000000000001). Rounded to whole percents, 0.125 and 0.12 were
    one name (refused as a duplicate), 0.004 read ``prune-0%`` and 0.995 ``prune-ch-100%``.
    """
    from decimal import Decimal

    return format((Decimal(repr(share)) * 100).normalize(), "f")


def prune_unstructured(
    amount: float = 0.5,
    *,
    name: str | None = None,
    fine_tune: Callable[[Any], Any] | None = None,
) -> Variant:
    """L1 magnitude pruning of single weights of every linear and convolution layer.

    Args:
        amount: the fraction of each layer's weights set to zero, in (0, 1).
        name: the row's name (default ``"prune-50%"`` for 0.5, ``"prune-12.5%"`` for 0.125:
            the amount as given).
        fine_tune: called with the pruned model (masks in place, train mode) to recover
            accuracy; it runs inside a recorded run whose energy is the variant's extra
            training cost.
    """
    share = _check_amount(amount)
    hook = _check_fine_tune(fine_tune)

    def apply(model: nn.Module, ctx: Context) -> Applied:
        from torch.nn.utils import prune

        layers = weighted_modules(model)
        if not layers:
            raise VariantSkipped("the model has no linear or convolution layer to prune")
        for _, module in layers:
            prune.l1_unstructured(module, "weight", amount=share)
        return _made_permanent(
            ctx, model, layers, hook, "zeros stored densely and multiplied by dense kernels"
        )

    return Variant(
        _check_name(name or f"prune-{_percent(share)}%"),
        "prune-unstructured",
        f"L1 magnitude pruning of {_percent(share)}% of each layer's weights"
        + (", fine-tuned" if hook else ""),
        apply,
    )


def prune_structured(
    amount: float = 0.3,
    *,
    name: str | None = None,
    n: int | float = 2,
    fine_tune: Callable[[Any], Any] | None = None,
    keep_last: bool = True,
) -> Variant:
    """Ln-norm pruning of whole output channels (rows) of every linear and convolution layer.

    Args:
        amount: the fraction of each layer's output channels set to zero, in (0, 1).
        name: the row's name (default ``"prune-ch-30%"`` for 0.3, ``"prune-ch-12.5%"`` for
            0.125: the amount as given).
        n: the norm ranking the channels (2: L2), a number > 0 (``math.inf``: the largest
            magnitude).
        fine_tune: as for :func:`prune_unstructured`.
        keep_last: leave whole the layer that makes the output (the classes), found by
            running the model on the example inputs (:func:`output_layers`; several heads
            are all kept), not the last one defined; the row's notes name it.

    Raises:
        ConfigError: ``amount`` is not in (0, 1), ``n`` is not a number > 0, or ``fine_tune``
            is not a function.
    """
    share = _check_amount(amount)
    n = _check_norm(n)
    hook = _check_fine_tune(fine_tune)

    def apply(model: nn.Module, ctx: Context) -> Applied:
        from torch.nn.utils import prune

        layers = weighted_modules(model)
        notes = ["channels zeroed, not removed: the dense shapes and kernels stay"]
        if keep_last and layers:
            # the layer that makes the output, found by running the model: the last one
            # *defined* (named_modules() order) pruned a classifier defined before its body
            kept, how = output_layers(model, ctx.example_inputs)
            layers = [(n, m) for n, m in layers if n not in kept]
            notes.append(
                f"output layer{'s' if len(kept) > 1 else ''} kept whole: {', '.join(kept)} ({how})"
                if kept
                else "no output layer kept: no linear or convolution layer ran on the example "
                "inputs"
            )
        if not layers:
            raise VariantSkipped(
                "no linear or convolution layer to prune (the output layer is kept)"
            )
        for _, module in layers:
            prune.ln_structured(module, "weight", amount=share, n=n, dim=0)
        return _made_permanent(ctx, model, layers, hook, *notes)

    return Variant(
        _check_name(name or f"prune-ch-{_percent(share)}%"),
        "prune-structured",
        f"L{n} pruning of {_percent(share)}% of each layer's output channels"
        + (" (output layer kept)" if keep_last else "")
        + (", fine-tuned" if hook else ""),
        apply,
    )


# ------------------------------------------------------------------------------ precision
def _cast_module(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    import torch
    from torch import nn

    class _Cast(nn.Module):
        """The model in a lower precision: floating inputs cast in, outputs cast back."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.model = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            def cast(x: Any, to: torch.dtype) -> Any:
                if isinstance(x, torch.Tensor) and x.is_floating_point():
                    return x.to(to)
                if isinstance(x, (tuple, list)):
                    return type(x)(cast(v, to) for v in x)
                return x

            out = self.model(*cast(args, dtype), **{k: cast(v, dtype) for k, v in kwargs.items()})
            return cast(out, torch.float32)

    return _Cast(model.to(dtype))


def half_precision(dtype: str = "bfloat16", *, name: str | None = None) -> Variant:
    """The model in ``bfloat16`` or ``float16`` (inputs cast in, outputs cast back to float32).

    Many CPUs have no fast path for either: the table shows the latency honestly.

    Args:
        dtype: ``"bfloat16"`` (or ``"bf16"``) or ``"float16"`` (or ``"fp16"``).
        name: the row's name (default ``"bf16"`` or ``"fp16"``).
    """
    aliases = {
        "bfloat16": "bf16",
        "bf16": "bf16",
        "float16": "fp16",
        "fp16": "fp16",
        "half": "fp16",
    }
    short = aliases.get(dtype) if isinstance(dtype, str) else None
    if short is None:
        raise ConfigError(f"dtype must be 'bfloat16' or 'float16', not {dtype!r}")

    def apply(model: nn.Module, ctx: Context) -> Applied:
        import torch

        twin = copy.deepcopy(model).eval()
        target = torch.bfloat16 if short == "bf16" else torch.float16
        return Applied(
            model=_cast_module(model.eval(), target),
            float_twin=twin,
            notes=("the same FPO at a lower precision",),
        )

    return Variant(
        _check_name(name or short),
        short,
        f"weights and activations in {'bfloat16' if short == 'bf16' else 'float16'}",
        apply,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""
