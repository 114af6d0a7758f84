"""Strict parsing of setting values (what a Hydra override or a YAML file gives): one rule per kind of value.

Every parser takes the value and the key it came from (e.g. `decoding.threshold`) and either returns the value as
the type the code needs or raises `InputError` naming the key, what it must be, and what it got. Nothing is coerced
by guessing: `maybe`, `no` or `1` is not a boolean, `abc` is not a number, `2.0` is not an integer. The point is that
a mistyped override stops in a second with its key named, instead of becoming a `TypeError` deep in the code (or,
worse, a truthy string that silently means "yes").
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from selfrag.io import InputError


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_bool(value: Any, key: str) -> bool:
    """`true` / `false`: a boolean, or the strings "true"/"false" in any case (what an `${oc.env:...}` gives)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InputError(f"{key} must be true or false, got {_shown(value)} (set {key}=true or {key}=false)")


def as_int(value: Any, key: str, *, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """An integer (not a bool, not a float), at least `minimum`; None only with `allow_none`."""
    if value is None and allow_none:
        return None
    bound = f" >= {minimum}" if minimum is not None else ""
    alternative = " or null" if allow_none else ""
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise InputError(f"{key} must be an integer{bound}{alternative}, got {_shown(value)}")
    return value


def as_float(
    value: Any,
    key: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_none: bool = False,
    what: str = "a number",
) -> float | None:
    """A finite number (int or float, not a bool) in [minimum, maximum]; None only with `allow_none`.

    `what` names the kind of number in the message (e.g. "a probability").
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        if minimum is not None and maximum is not None:
            bound = f" in [{minimum:g}, {maximum:g}]"
        elif minimum is not None:
            bound = f" >= {minimum:g}"
        elif maximum is not None:
            bound = f" <= {maximum:g}"
        else:
            bound = ""
        alternative = " or null" if allow_none else ""
        raise InputError(f"{key} must be {what}{bound}{alternative}, got {_shown(value)}")
    return float(value)


def as_choice(value: Any, key: str, choices: Collection[str], *, allow_none: bool = False) -> str | None:
    """One of `choices` (exact string); None only with `allow_none`."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        alternative = " (or null)" if allow_none else ""
        raise InputError(f"{key} must be one of {', '.join(choices)}{alternative}, got {_shown(value)}")
    return value


def as_str(value: Any, key: str, *, allow_none: bool = False) -> str | None:
    """A non-empty string (numbers are not silently turned into paths or names); None only with `allow_none`."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{key} must be a non-empty string{' or null' if allow_none else ''}, got {_shown(value)}")
    return value


def as_float_list(value: Any, key: str, *, minimum: float | None = None) -> list[float]:
    """A non-empty list of numbers, each checked as by `as_float` (the message names the item, e.g. `grid.w_rel[2]`)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InputError(f"{key} must be a list of numbers, e.g. {key}=[0,0.5,1], got {_shown(value)}")
    items = list(value)
    if not items:
        raise InputError(f"{key} must be a non-empty list of numbers, e.g. {key}=[0,0.5,1]")
    return [as_float(v, f"{key}[{i}]", minimum=minimum) for i, v in enumerate(items)]  # type: ignore[misc]


def check_keys(values: Mapping[str, Any], prefix: str, known: Collection[str]) -> None:
    """Refuse keys of `values` that are not in `known`, naming them as `prefix.key` and listing the known ones."""
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        names = ", ".join(f"{prefix}.{k}" for k in unknown)
        raise InputError(f"unknown setting {names}; {prefix} takes {', '.join(sorted(known))}")
