"""What every script does around its work: bad input becomes one clear line, not a traceback (no Hydra here)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from selfrag.io import InputError

T = TypeVar("T")


def run_or_exit(run: Callable[[T], Any], cfg: T) -> None:
    """Call `run(cfg)`; on `InputError` print `error: <message>` to stderr and exit with status 2."""
    try:
        run(cfg)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
