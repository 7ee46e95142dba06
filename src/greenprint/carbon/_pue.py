"""Power usage effectiveness (PUE): facility energy / IT energy, as a number or a named preset."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from greenprint._config import Config, load_config
from greenprint._exceptions import InvalidPUEError
from greenprint._validate import finite_number, number_or_name

__all__ = ["DEFAULT_PUE", "MAX_PUE", "MIN_PUE", "PUE", "PUE_PRESETS", "resolve_pue", "validate_pue"]

MIN_PUE = 1.0
MAX_PUE = 3.0
#: Used when nothing is configured: no facility overhead (flagged ``is_default``).
DEFAULT_PUE = 1.0

#: name -> (PUE, source with year). Operators' figures are fleet-wide annual averages as they
#: published them; see docs/carbon.md.
PUE_PRESETS: Mapping[str, tuple[float, str]] = MappingProxyType(
    {
        "google": (1.10, "Google Environmental Report 2024: fleet-wide annual PUE, 2023"),
        "aws": (1.15, "Amazon Web Services: global data-centre PUE, 2023"),
        "azure": (1.18, "Microsoft: global data-centre fleet PUE, 2023"),
        "hyperscale": (
            1.14,
            "mean of the google (1.10), aws (1.15) and azure (1.18) presets, 2023",
        ),
        "uptime-survey-2023": (
            1.58,
            "Uptime Institute Global Data Center Survey 2023: industry average annual PUE",
        ),
        "uptime-survey-2024": (
            1.56,
            "Uptime Institute Global Data Center Survey 2024: industry average annual PUE",
        ),
        "on-premise": (
            1.58,
            "typical enterprise data centre: Uptime Institute Global Data Center Survey 2023",
        ),
        "none": (1.0, "no facility overhead counted (a laptop or desktop)"),
    }
)
_PRESET_ALIASES = {
    "gcp": "google",
    "amazon": "aws",
    "microsoft": "azure",
    "hyperscaler": "hyperscale",
    "uptime": "uptime-survey-2024",
    "on-prem": "on-premise",
    "onprem": "on-premise",
    "laptop": "none",
    "desktop": "none",
}


@dataclass(frozen=True)
class PUE:
    """The power usage effectiveness applied to a run's IT energy.

    Attributes:
        value: facility energy / IT energy, 1.0 <= value <= 3.0 (dimensionless).
        source: provenance: ``"argument"``, ``"env:GREENPRINT_PUE"``, ``"file:/x/greenprint.toml"``,
            ``"preset:google (...)"`` or ``"default:1.0 (...)"``.
        is_default: ``True`` when nothing was configured and 1.0 is used.
        name: the preset name, if one was used.
    """

    value: float
    source: str
    is_default: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        validate_pue(self.value, what=f"PUE ({self.source})")


def validate_pue(value: object, *, what: str = "PUE") -> float:
    """Check a PUE and return it as a float.

    Args:
        value: the PUE (a number, or a string holding one).
        what: how to name the value in the error message.

    Returns:
        The PUE.

    Raises:
        InvalidPUEError: not a number, not finite, or outside ``1.0 <= x <= 3.0``.
    """
    return finite_number(
        what,
        value,
        low=MIN_PUE,
        high=MAX_PUE,
        alternative="or a preset name",
        error=InvalidPUEError,
    )


def _from_text(text: str, source: str) -> PUE:
    parsed = number_or_name(text)
    if isinstance(parsed, float):
        # "PUE (env:GREENPRINT_PUE)" says where a bad value came from; an argument is the
        # user's own value, and "(argument)" is only greenprint's provenance tag
        what = "PUE" if source == "argument" else f"PUE ({source})"
        return PUE(validate_pue(text, what=what), source)
    key = "-".join(parsed.lower().replace("_", "-").split())
    key = _PRESET_ALIASES.get(key, key)
    preset = PUE_PRESETS.get(key)
    if preset is None:
        import difflib

        near = difflib.get_close_matches(key, [*PUE_PRESETS, *_PRESET_ALIASES], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        where = "" if source == "argument" else f" ({source})"  # as a bad number says it
        raise InvalidPUEError(
            f"PUE {text!r}{where} is neither a number in [{MIN_PUE:g}, {MAX_PUE:g}] nor a "
            f"preset ({', '.join(PUE_PRESETS)}){hint}"
        )
    value, citation = preset
    prefix = "" if source == "argument" else f"{source} -> "
    return PUE(value, f"{prefix}preset:{key} ({citation})", name=key)


def resolve_pue(pue: float | str | None = None, *, config: Config | None = None) -> PUE:
    """Decide which PUE to apply.

    Order: the ``pue`` argument > ``GREENPRINT_PUE`` > ``pue`` in ``greenprint.toml`` or
    ``[tool.greenprint]`` > 1.0, flagged ``is_default``.

    Args:
        pue: a number (1.0-3.0) or a preset name from :data:`PUE_PRESETS` (``"google"``).
        config: settings to consult; ``None`` reads them with ``load_config()``.

    Returns:
        The :class:`PUE` with its provenance.

    Raises:
        InvalidPUEError: a bad number or an unknown preset (the message suggests the nearest).
    """
    if pue is not None:
        if isinstance(pue, str):
            return _from_text(pue, "argument")
        return PUE(validate_pue(pue, what="PUE"), "argument")
    if config is None:
        config = load_config()
    configured = config.get("pue")
    if configured is not None:
        return _from_text(configured, config.sources.get("pue", "config"))
    return PUE(DEFAULT_PUE, "default:1.0 (no PUE configured: facility overhead not counted)", True)
