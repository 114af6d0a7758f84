"""The Hydra side of the scripts: the config resolvers, and command-line overrides checked before Hydra sees them.

A mistyped key or group option gets one line naming the closest real one, instead of Hydra's multi-line "Key
'treshold' is not in struct" (exit status 1).

`hydra_app(config_name)` replaces `@hydra.main(...)` on every script: it composes the script's config with the
user's overrides once (no interpolation is resolved, nothing is loaded), and on an unknown key or option prints
`error: ...; did you mean ...?` and exits with status 2, like every other bad-input error (`selfrag.cli`). Runs with
Hydra's own flags (`--cfg`, `--multirun`, `--help`, ...) are left to Hydra.

Importing this module registers the resolvers `conf/` uses (`packaged_only`); code that composes the configs itself
(Hydra's compose API, tests) imports it first.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from selfrag.cli import exit_with_error

#: The configuration directory every script composes from.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _packaged_only(path: Any, value: Any, otherwise: Any = None) -> Any:
    """`${packaged_only:${.path},VALUE[,OTHERWISE]}`: VALUE while the model group's `path` is unset (the packaged
    model the group describes), OTHERWISE (default null) once the user points `model.path` at another checkpoint.
    The shipped models' adapter, prompt and name use it, so `model.path=DIR` alone means "this model" and does not
    silently keep the packaged model's adapter; `model.adapter=...` given with it still applies."""
    return value if path is None else otherwise


# Registered on import: every script imports this module (hydra_app) before Hydra composes its config.
OmegaConf.register_new_resolver("packaged_only", _packaged_only, replace=True)


def _dotted_keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """Every key of a composed config, dotted (`decoding.threshold`), without resolving any interpolation."""
    for key in node.keys():
        path = f"{prefix}{key}"
        yield path
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _dotted_keys(child, f"{path}.")


def _closest(word: str, choices: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def override_problem(config_name: str, overrides: Sequence[str]) -> str | None:
    """The one-line message for the first unknown key or group option among `overrides`, or None if they compose.

    Only Hydra's two "no such thing" failures are reported here; anything else (a malformed value, ...) is left to
    the run, which reports it in its own way.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=user)
            return None
    except MissingConfigException as err:
        found = re.search(r"Could not find '([^']+)/([^'/]+)'", str(err))
        if not found:
            return None
        group, option = found.group(1), found.group(2)
        choices = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        guess = _closest(option, choices)
        hint = f"did you mean {group}={guess}? " if guess else ""
        return f"{group}={option}: no such option in conf/{group}/; {hint}choices: {', '.join(choices)}"
    except ConfigCompositionException as err:
        found = re.search(r"Could not override '([^']+)'", str(err))
        if not found:
            return None
        key = found.group(1)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            valid = [o for o in user if o.split("=", 1)[0].lstrip("+~") != key]
            try:
                keys = list(_dotted_keys(compose(config_name, overrides=valid)))
            except Exception:
                keys = list(_dotted_keys(compose(config_name)))
        if key in keys:  # the key exists: the failure is something else (e.g. a new key inside it), Hydra says what
            return None
        guess = _closest(key, keys)
        hint = f"; did you mean {guess}?" if guess else ""
        return f"{key}: no such setting in conf/{config_name}.yaml{hint} (to add a new key on purpose: +{key}=...)"


def hydra_app(config_name: str) -> Callable[[Callable[[DictConfig], None]], Callable[[], None]]:
    """Decorator for a script's entry point: `@hydra.main` on `conf/<config_name>.yaml`, after `override_problem`."""

    def decorate(task: Callable[[DictConfig], None]) -> Callable[[], None]:
        hydra_entry = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)

        @functools.wraps(task)
        def entry() -> None:
            arguments = sys.argv[1:]
            if not any(a.startswith("-") for a in arguments):
                problem = override_problem(config_name, arguments)
                if problem:
                    exit_with_error(problem)
            hydra_entry()

        return entry

    return decorate
