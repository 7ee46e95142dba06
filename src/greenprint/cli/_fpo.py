"""``greenprint fpo MODULE:FACTORY --input-shape 1,3,224,224``: count a model's FPO.

The factory (a function or class taking no arguments) is imported from a module on the path (the
current directory included) or from a ``.py`` file, called under ``torch.device(DEVICE)`` so that
on the default meta device no weight is allocated, and the model is run on example inputs of the
given shapes. A factory that cannot be imported or called, a bad shape or dtype, or inputs the
model rejects (any exception from the factory or the forward, AssertionError and KeyError
included) give one line naming the exception and exit status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from greenprint._exceptions import FPOInputError, GreenprintError
from greenprint._imports import require
from greenprint.cli._common import Choice, IntRange

__all__ = ["command", "load_factory"]

logger = logging.getLogger(__name__)


def load_factory(target: str) -> Any:
    """The callable named by ``MODULE:FACTORY`` (``pkg.models:resnet50``, ``models.py:Net``).

    Args:
        target: a module path or ``.py`` file, a colon, and an attribute path (dots allowed).

    Returns:
        The factory.

    Raises:
        FPOInputError: malformed target, module not importable, attribute missing or not
            callable.
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise FPOInputError(f"expected MODULE:FACTORY (e.g. mypkg.models:resnet50), got {target!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        module = _load_file(Path(module_name))
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # any error while importing user code is bad input here
            logger.debug("importing %s failed", module_name, exc_info=True)
            raise FPOInputError(
                f"cannot import {module_name!r}: {type(e).__name__}: {_first_line(e)}"
            ) from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FPOInputError(f"{module_name!r} has no attribute {attr!r}{_nearest(obj, part)}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise FPOInputError(f"{target!r} is not callable (a function or class returning a model)")
    return obj


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise FPOInputError(f"no such file: {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"_greenprint_fpo_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise FPOInputError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up there
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # any error while importing user code is bad input here
        sys.modules.pop(spec.name, None)
        logger.debug("importing %s failed", path, exc_info=True)
        raise FPOInputError(
            f"cannot import {str(path)!r}: {type(e).__name__}: {_first_line(e)}"
        ) from e
    return module


def _nearest(obj: Any, name: str) -> str:
    """``"; did you mean 'small_cnn'?"`` for a name typed wrong (public names of ``obj``)."""
    import difflib

    from greenprint._suggest import suggestion

    names = [n for n in dir(obj) if not n.startswith("_")]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return suggestion(close)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


@click.command("fpo")
@click.argument("target", metavar="MODULE:FACTORY")
@click.option(
    "--input-shape",
    "shapes",
    multiple=True,
    required=True,
    metavar="D0,D1,...",
    help="Shape of one input, e.g. 1,3,224,224; repeat for a model with several inputs.",
)
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    metavar="DTYPE",
    help="Input dtype (float32, bfloat16, int64 for token ids, ...); one for all inputs or one "
    "per --input-shape.  [default: float32]",
)
@click.option(
    "--backward",
    is_flag=True,
    help="Count a training step's forward and backward (model in train mode); without it, "
    "inference (eval mode).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option(
    "--by",
    type=Choice(["module", "op"]),
    default="module",
    show_default=True,
    help="Table per module (nested) or per aten op.",
)
@click.option(
    "--depth",
    type=IntRange(min=0),
    default=None,
    help="Deepest module nesting in the table (0: the model only) [default: every level].",
)
@click.option(
    "--device",
    default="meta",
    show_default=True,
    help="Device to build and run the model on; meta allocates nothing.",
)
@click.option("--strict", is_flag=True, help="Fail on the first op with no FPO rule.")
def command(
    target: str,
    shapes: tuple[str, ...],
    dtypes: tuple[str, ...],
    backward: bool,
    as_json: bool,
    by: str,
    depth: int | None,
    device: str,
    strict: bool,
) -> None:
    """Count the FPO of the model FACTORY returns, on example inputs of the given shapes.

    FPO counts every floating-point add and multiply, forward (and backward with --backward),
    per module or per aten op; ops with no rule are listed, never counted as zero.

    Example: greenprint fpo mypkg.models:resnet50 --input-shape 1,3,224,224 --backward
    """
    from greenprint.fpo._inputs import parse_shape

    for shape in shapes:  # a malformed shape is refused before importing torch (~2 s of CPU)
        parse_shape(shape)
    torch = require("torch", extra="torch", purpose="greenprint fpo")
    from greenprint.fpo import count_fpo, example_inputs

    factory = load_factory(target)
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise FPOInputError(f"unknown device {device!r}: {_first_line(e)}") from e
    try:
        inputs = example_inputs(*shapes, dtype=list(dtypes) or "float32", device=dev)
    except (RuntimeError, AssertionError) as e:  # torch asserts on a device it was not built for
        raise FPOInputError(f"cannot create inputs on {device!r}: {_first_line(e)}") from e
    try:
        with dev:
            model = factory()
    except Exception as e:  # the factory is user code: report it as bad input, in one line
        logger.debug("the factory %s failed", target, exc_info=True)
        raise FPOInputError(f"{target} failed: {type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(model, torch.nn.Module):
        raise FPOInputError(f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    model.train(backward)  # inference in eval mode; training (dropout, batch statistics) too
    described = ", ".join(f"({','.join(map(str, t.shape))}) {t.dtype}" for t in inputs)
    try:
        result = count_fpo(model, *inputs, backward=backward, strict=strict)
    except FPOInputError as e:  # the model named, as the CLI's other errors name it
        text = str(e).replace(
            "(backward=False; on the command line, without --backward)", "(without --backward)"
        )
        raise FPOInputError(f"{target}: {text}") from e
    except GreenprintError:
        raise
    except Exception as e:  # the forward is user code (timm asserts, torchvision KeyErrors)
        logger.debug("the model failed on %s", described, exc_info=True)
        raise FPOInputError(
            f"{target} failed on inputs {described}: {type(e).__name__}: {_first_line(e)}"
        ) from e
    if as_json:
        payload = {"model": target, "inputs": described, "device": str(dev), **result.to_dict()}
        click.echo(json.dumps(payload, indent=2))
        return
    passes = "forward + backward" if backward else "forward"
    click.echo(f"{target} on {described}, {dev}, {passes}")
    click.echo("")
    click.echo(result.table(by=by, depth=depth))
