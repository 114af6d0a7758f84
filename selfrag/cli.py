"""What every script does around its work: bad input becomes one clear line, not a traceback, and the output
directory is checked and claimed before anything is written into it.

- `run_or_exit(run, cfg)`: the body of every Hydra entry point. `InputError` (bad input or settings),
  `ServiceError` (an endpoint that refused or is down) and a missing mandatory config value (`???`) print
  `error: <message>` on stderr and exit with status 2.
- `OutputDirCallback`: a Hydra callback every script's primary config names under `hydra.callbacks`. Hydra creates
  its run directory (`hydra.run.dir`, our `output_dir`) and writes `.hydra/` there *before* the task runs, so a check
  inside the task comes too late: an `output_dir` that is a file fails in Hydra with a traceback, and a refused run
  has already overwritten the `.hydra/` record of the run it collided with. The callback runs first
  (`on_run_start`), so that: the output directory must be creatable; it must not be the directory of one of the
  job's inputs (`inputs`: config keys, e.g. rerank's `predictions`); and it is claimed for this process
  (`selfrag.rundir.claim_output_dir`) until the run ends, so a second writer is refused before Hydra writes a byte.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from selfrag.io import InputError, ServiceError
from selfrag.rundir import claim_output_dir, prepare_output_dir, refuse_input_dir, release_output_dir

T = TypeVar("T")


def exit_with_error(message: object) -> NoReturn:
    """Print `error: <message>` (one line) to stderr and exit with status 2."""
    text = " ".join(str(message).split("\n")).strip()
    print(f"error: {text}", file=sys.stderr)
    sys.exit(2)


def _missing_message(err: MissingMandatoryValue) -> str:
    key = err.full_key or "a setting"
    return f"{key} is required and has no value; set it on the command line ({key}=...)"


def run_or_exit(run: Callable[[T], Any], cfg: T) -> None:
    """Call `run(cfg)`; on `InputError`, `ServiceError` or a missing mandatory value print `error: <message>` to
    stderr and exit with status 2."""
    try:
        run(cfg)
    except (InputError, ServiceError) as err:
        exit_with_error(err)
    except MissingMandatoryValue as err:
        exit_with_error(_missing_message(err))


class OutputDirCallback(Callback):
    """Check and claim the output directory before Hydra writes into it (see the module docstring).

    Configured in a primary config as
    ```yaml
    hydra:
      callbacks:
        output_dir:
          _target_: selfrag.cli.OutputDirCallback
          inputs: [predictions]      # optional: keys whose directory output_dir must not be
    ```

    Args:
        key: the config key of the directory the job writes (and locks).
        inputs: config keys of the job's inputs (a file stands for its directory); output_dir may not be one of
            those directories.
    """

    def __init__(self, key: str = "output_dir", inputs: Sequence[str] = ()) -> None:
        self.key = key
        self.inputs = list(inputs)
        self.claimed: str | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an exception raised here into a warning; a bad directory must stop the run, so exit directly.
        try:
            output_dir = OmegaConf.select(config, self.key, throw_on_missing=True)
            if output_dir is None:
                raise InputError(f"{self.key} is null; set {self.key}=DIR")
            inputs = {key: OmegaConf.select(config, key, default=None) for key in self.inputs}
            refuse_input_dir(output_dir, inputs)
            claim_output_dir(output_dir, key=self.key)
            self.claimed = str(output_dir)
            # Hydra's own run directory may be elsewhere (build_index keeps it in a subdirectory): it must be usable.
            run_dir = OmegaConf.select(config, "hydra.run.dir", default=None)
            if run_dir is not None:
                prepare_output_dir(run_dir, key="hydra.run.dir")
        except (InputError, ServiceError) as err:
            exit_with_error(err)
        except MissingMandatoryValue as err:
            exit_with_error(_missing_message(err))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.claimed is not None:
            release_output_dir(self.claimed)
            self.claimed = None
