"""The server's settings and the per-request decoding settings, checked before anything runs.

`ServerSettings.from_config` reads the `server` node of `conf/serve.yaml` (every value checked by `selfrag.values`, an
unknown key refused by name). A request's `selfrag` settings are merged over the server's `decoding` node and checked
by `DecodingConfig.from_mapping`, the code that checks `infer`'s `decoding.*` overrides, one key at a time so the
error names the request field (`selfrag.w_rel`), then held to the server's limits. The re-rank endpoint's weights,
mode and threshold go through `parse_weights`, `parse_mode` and `parse_threshold`, as `scripts/rerank.py`'s do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from selfrag.decoding.config import DecodingConfig, parse_mode, parse_threshold, parse_weights
from selfrag.decoding.critique import RewardWeights
from selfrag.io import InputError
from selfrag.values import as_choice, as_float, as_int, as_str, check_keys

#: Decoding settings a request may set under `selfrag` (the other `DecodingConfig` fields stay the server's).
REQUEST_DECODING_KEYS = ("w_rel", "w_sup", "w_use", "use_seqscore", "mode", "threshold", "ndocs", "max_new_tokens",
                         "long_form", "beam_width", "max_depth", "score_all_paths")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
#: A request's decoding setting -> the server setting that bounds it.
LIMITS = {"ndocs": "max_ndocs", "max_new_tokens": "max_new_tokens", "beam_width": "max_beam_width",
          "max_depth": "max_depth"}


class RequestError(Exception):
    """A request the server refuses: HTTP `status`, a message, and the request field it is about (`param`)."""

    def __init__(self, status: int, message: str, param: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class ServerSettings:
    """The `server` node of `conf/serve.yaml` (defaults: `conf/server/default.yaml`).

    Attributes:
        host, port: where to listen (127.0.0.1 by default: only this machine can connect).
        api_key: when set, every `/v1/*` request needs `Authorization: Bearer <api_key>`; None: no check.
        model_name: the name `/v1/models` and responses give; None: the model setting's name (for `model=custom`,
            the checkpoint directory's name).
        max_body_bytes: larger request bodies are refused (413) before they are parsed.
        max_question_chars: longer questions are refused (400).
        max_ndocs, max_new_tokens, max_beam_width, max_depth: the largest values a request may ask for.
        batch_window_ms: how long the batcher waits for more requests after the first one arrives.
        max_batch: the most requests one batch (and so one decoder call) takes.
        max_queue: requests waiting beyond this are refused (503) instead of queueing without bound.
        log_level: uvicorn's log level.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    model_name: str | None = None
    max_body_bytes: int = 1_000_000
    max_question_chars: int = 2000
    max_ndocs: int = 20
    max_new_tokens: int = 512
    max_beam_width: int = 4
    max_depth: int = 10
    batch_window_ms: float = 20.0
    max_batch: int = 16
    max_queue: int = 1024
    log_level: str = "info"

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> ServerSettings:
        """Check and build from the `server` node (a plain mapping).

        Raises:
            InputError: an unknown key or a bad value, naming `server.<key>`.
        """
        check_keys(values, "server", [f.name for f in fields(cls)])
        v = {**{f.name: f.default for f in fields(cls)}, **values}
        port = as_int(v["port"], "server.port", minimum=0)
        if port > 65535:  # type: ignore[operator]
            raise InputError(f"server.port must be an integer in [0, 65535], got {port}")
        ints = {name: as_int(v[name], f"server.{name}", minimum=1)
                for name in ("max_body_bytes", "max_question_chars", "max_ndocs", "max_new_tokens", "max_beam_width",
                             "max_depth", "max_batch", "max_queue")}
        return cls(
            host=str(as_str(v["host"], "server.host")),
            port=int(port),  # type: ignore[arg-type]
            api_key=as_str(v["api_key"], "server.api_key", allow_none=True),
            model_name=as_str(v["model_name"], "server.model_name", allow_none=True),
            batch_window_ms=float(as_float(v["batch_window_ms"], "server.batch_window_ms", minimum=0.0,
                                           maximum=10_000.0)),  # type: ignore[arg-type]
            log_level=str(as_choice(v["log_level"], "server.log_level",
                                    ("critical", "error", "warning", "info", "debug", "trace"))),
            **ints,  # type: ignore[arg-type]
        )

    def over_limit(self, config: DecodingConfig) -> tuple[str, str] | None:
        """The first decoding setting above the server's limit, as (key, "must be <= N ..., got V"); None if none."""
        for name, limit_key in LIMITS.items():
            value, limit = getattr(config, name), getattr(self, limit_key)
            if value > limit:
                return name, f"must be <= {limit} (the server's limit, server.{limit_key}), got {value}"
        return None

    def check_decoding(self, config: DecodingConfig) -> None:
        """Refuse a server `decoding` node above the server's own limits, before the model loads.

        Raises:
            InputError: naming `decoding.<key>` and the limit.
        """
        problem = self.over_limit(config)
        if problem:
            raise InputError(f"decoding.{problem[0]} {problem[1]}; lower it or raise the limit")

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        return self.host in LOOPBACK_HOSTS


def _renamed(message: str, key: str, param: str) -> str:
    """The library's message about `decoding.<key>` told in the request's words (`selfrag.<key>`, `max_tokens`)."""
    return message.replace(f"decoding.{key}", param).replace("decoding.", "selfrag.")


def request_decoding(
    base: Mapping[str, Any],
    overrides: Mapping[str, Any],
    server: ServerSettings,
    *,
    params: Mapping[str, str] | None = None,
) -> DecodingConfig:
    """The decoding settings of one request: the server's `decoding` node with the request's values over it.

    Each value is checked by `DecodingConfig.from_mapping` (the CLI's checks) on its own first, so the error names
    the field the request got wrong; then all together (e.g. a mode with a threshold); then against the limits.

    Args:
        base: the server's `decoding` node (a plain mapping, `null` weights meaning the library defaults).
        overrides: the request's settings, keyed by `DecodingConfig` field (only `REQUEST_DECODING_KEYS`).
        server: the limits.
        params: the request field each key came from, when not `selfrag.<key>` (e.g. max_new_tokens -> max_tokens).

    Raises:
        RequestError: 400, naming the field.
    """
    params = dict(params or {})
    unknown = [k for k in overrides if k not in REQUEST_DECODING_KEYS]
    if unknown:
        raise RequestError(400, f"unknown setting selfrag.{unknown[0]}; selfrag takes "
                                f"{', '.join(sorted((*REQUEST_DECODING_KEYS, 'passages')))}", f"selfrag.{unknown[0]}")
    for key, value in overrides.items():
        param = params.get(key, f"selfrag.{key}")
        try:
            DecodingConfig.from_mapping({**base, key: value})
        except InputError as err:
            raise RequestError(400, _renamed(str(err), key, param), param) from None
    try:
        config = DecodingConfig.from_mapping({**base, **overrides})
    except InputError as err:  # pragma: no cover - every single value passed; kept for combinations
        raise RequestError(400, str(err).replace("decoding.", "selfrag."), "selfrag") from None
    problem = server.over_limit(config)
    if problem:
        key, message = problem
        param = params.get(key, f"selfrag.{key}")
        raise RequestError(400, f"{param} {message}", param)
    return config


def rerank_settings(values: Mapping[str, Any]) -> tuple[RewardWeights, str | None, float | None]:
    """The weights, mode and threshold of a re-rank request, checked as `scripts/rerank.py` checks its overrides
    (`null`: the library default weight; mode `null` keeps the saved decision; a threshold alone implies adaptive).

    Raises:
        RequestError: 400, naming the field (`w_rel`, `mode`, ...).
    """
    for key in ("w_rel", "w_sup", "w_use", "use_seqscore"):
        try:
            parse_weights(**{key: values.get(key)}, prefix="decoding")
        except InputError as err:
            raise RequestError(400, _renamed(str(err), key, key), key) from None
    weights = parse_weights(values.get("w_rel"), values.get("w_sup"), values.get("w_use"), values.get("use_seqscore"))
    try:
        mode = parse_mode(values.get("mode"), "mode", allow_none=True)
    except InputError as err:
        raise RequestError(400, str(err), "mode") from None
    try:
        threshold = parse_threshold(values.get("threshold"), "threshold", allow_none=True)
    except InputError as err:
        raise RequestError(400, str(err), "threshold") from None
    if mode == "adaptive" and threshold is None:
        raise RequestError(400, "mode=adaptive needs a threshold (a probability in [0, 1])", "threshold")
    return weights, mode, threshold
