"""The HTTP server: an OpenAI-compatible chat endpoint over the Self-RAG decoder, re-ranking without the model, and
the trace page (docs/serving.md).

- `ServeConfig.from_config`: every setting of `conf/serve.yaml` checked, before any model loads;
- `create_app`: the FastAPI app over a loaded `ServingEngine` (the test suite builds it around the tiny model);
- `open_app`: load the model of a `ServeConfig` and build the app; `serve`: run it with uvicorn;
- `ServerThread`: the app on a loopback port in a background thread (tests, benchmarks).

Safety: the server binds 127.0.0.1 unless told otherwise; with `server.api_key` every `/v1/*` request needs
`Authorization: Bearer <key>` (the page and `/health` stay open); bodies over `server.max_body_bytes` are refused
before parsing (413); questions, ndocs, max_new_tokens, beam width and depth are bounded; every refusal is a JSON
error naming the field, `{"error": {"message", "type", "param", "code"}}`, and an unexpected failure is a JSON 500
without a traceback (the traceback goes to the server's log).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.records import rerank
from selfrag.decoding.run import DecodeSettings, SelfRAGPredictor
from selfrag.inputs import query_from_row
from selfrag.io import InputError
from selfrag.serving.batcher import Batcher, QueueFull
from selfrag.serving.config import (
    REQUEST_DECODING_KEYS,
    RequestError,
    ServerSettings,
    request_decoding,
    rerank_settings,
)
from selfrag.serving.engine import ChatJob, ChatResult, ServingEngine
from selfrag.serving.schemas import ChatRequest, RerankRequest

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: What `DecodeSettings.from_config` reads as the input file: a server has none, its questions come in requests.
_NO_INPUT_FILE = {"path": "(questions come from requests)", "limit": None}


@dataclass(frozen=True)
class ServeConfig:
    """Every setting of `conf/serve.yaml`, checked.

    Attributes:
        decode: the model, backend, prompt, retriever, task and default decoding settings (as `infer` reads them).
        server: host, port, key, limits, batching.
        decoding: the `decoding` node as given (null weights = library defaults): what request settings go over.
        model_name: the name the API reports.
    """

    decode: DecodeSettings
    server: ServerSettings
    decoding: dict[str, Any]
    model_name: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ServeConfig:
        """Build from the plain, resolved config (`OmegaConf.to_container(cfg, resolve=True)`).

        Raises:
            InputError: the first bad value, naming its key (no model is loaded).
        """
        server = ServerSettings.from_config(config.get("server") or {})
        decode = DecodeSettings.from_config({**config, "data": _NO_INPUT_FILE})
        server.check_decoding(decode.decoding)
        if decode.task == "arc_challenge":
            raise InputError("task=arc_challenge needs answer choices per question, which chat requests do not "
                             "carry; serve task=popqa, triviaqa, pubhealth, asqa or bio")
        model = decode.model
        name = server.model_name or (Path(model.path).name if model.name == "custom" and model.path else model.name)
        return cls(decode=decode, server=server, decoding=dict(config["decoding"]), model_name=name)


def error_body(message: str, param: str | None = None, *, type_: str = "invalid_request_error",
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _param(loc: tuple[Any, ...]) -> str | None:
    """A pydantic error location as a request field: ("body", "messages", 0, "role") -> "messages[0].role"."""
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


class Guard:
    """ASGI middleware run before any route: the bearer key on `/v1/*`, then the body size limit.

    The body is read here (at most `max_body_bytes` + one chunk) and handed on, so a too-large body is refused with
    413 whether or not it declared its length, and never reaches the JSON parser.
    """

    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope["path"].startswith("/v1/"):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                what = "no Authorization header" if not given else "a wrong API key"
                await _send_json(send, 401, error_body(
                    f"this server needs `Authorization: Bearer <key>`; the request has {what}",
                    code="invalid_api_key"), extra_headers=[(b"www-authenticate", b"Bearer")])
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_large = error_body(f"the request body is larger than the server takes ({self.max_body_bytes} bytes, "
                               "server.max_body_bytes)", code="request_too_large")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _send_json(send, 413, too_large)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: dict[str, Any],
                     extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def create_app(engine: ServingEngine, serve: ServeConfig, *, close_engine: bool = False) -> Any:
    """The FastAPI app over a loaded engine.

    Args:
        engine: the decoder (its batcher is started and stopped with the app).
        serve: the checked settings.
        close_engine: release the model when the app shuts down (`serve` does; a test that owns the engine not).
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    server = serve.server
    batcher: Batcher[ChatJob, ChatResult] = Batcher(engine.process, window_s=server.batch_window_ms / 1000.0,
                                                    max_batch=server.max_batch, max_queue=server.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            if close_engine:
                engine.close()

    # no /docs: Swagger UI loads its assets from a CDN; the schema stays at /openapi.json
    app = FastAPI(title="Self-RAG", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.batcher = batcher
    app.state.serve = serve

    def fail(status: int, message: str, param: str | None = None, code: str | None = None,
             type_: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse(error_body(message, param, type_=type_, code=code), status_code=status)

    @app.exception_handler(RequestError)
    async def refused(request: Any, err: RequestError) -> JSONResponse:
        type_ = "server_busy" if err.status == 503 else "invalid_request_error"
        return fail(err.status, err.message, err.param, err.code, type_)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Any, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "malformed request", "type": ""}
        param = _param(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return fail(400, f"the request body is not valid JSON: {first.get('msg')}", None, "invalid_json")
        if first.get("type") == "extra_forbidden":
            owner, _, name = (param or "").rpartition(".")
            known = {"selfrag": sorted((*REQUEST_DECODING_KEYS, "passages")),
                     "": sorted(RerankRequest.model_fields)}.get(owner.split("[")[0])
            hint = f"; {owner or 'the body'} takes {', '.join(known)}" if known else ""
            return fail(422, f"unknown field {param}{hint}", param, "unknown_field")
        where = f"{param}: " if param else ""
        return fail(422, f"{where}{first.get('msg')}", param, first.get("type"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Any, err: StarletteHTTPException) -> JSONResponse:
        return fail(err.status_code, str(err.detail), None)

    @app.exception_handler(Exception)
    async def unexpected(request: Any, err: Exception) -> JSONResponse:
        log.error("unexpected error on %s: %r", getattr(request, "url", "?"), err, exc_info=err)
        return fail(500, f"internal error ({type(err).__name__}); see the server's log", None, None, "server_error")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": serve.model_name, "waiting": batcher.waiting,
                "batcher": batcher.stats.as_json(), "decoder": engine.stats.as_json()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": serve.model_name, "object": "model", "created": 0,
                                            "owned_by": "selfrag"}]}

    @app.get("/v1/selfrag/config")
    async def settings() -> dict[str, Any]:
        """The server's default decoding settings (what a request's `selfrag` settings go over) and its limits."""
        config = DecodingConfig.from_mapping(serve.decoding)
        limits = {k: getattr(server, k) for k in ("max_body_bytes", "max_question_chars", "max_ndocs",
                                                  "max_new_tokens", "max_beam_width", "max_depth", "max_batch")}
        return {"model": serve.model_name, "task": serve.decode.task, "decoding": dataclasses.asdict(config),
                "limits": limits, "auth": server.api_key is not None}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> dict[str, Any]:
        question = body.question(server.max_question_chars)
        overrides, params = body.decoding_overrides()
        config = request_decoding(serve.decoding, overrides, server, params=params)
        request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        row: dict[str, Any] = {"id": request_id, "question": question}
        if body.selfrag is not None and body.selfrag.passages:
            row["ctxs"] = [p.model_dump(exclude_none=True) for p in body.selfrag.passages]
        try:
            query = query_from_row(row, serve.decode.task, where="the request", default_id=request_id)
        except InputError as err:
            raise RequestError(400, str(err), "messages") from None
        try:
            result = await batcher.submit(ChatJob(query, config))
        except QueueFull as err:
            raise RequestError(503, str(err), code="server_busy") from None
        trace = result.row
        return {
            "id": request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": serve.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": trace["answer"]},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens},
            "system_fingerprint": None,
            "selfrag": trace,
            "selfrag_settings": dataclasses.asdict(config),
        }

    @app.post("/v1/selfrag/rerank")
    async def rerank_trace(body: RerankRequest) -> dict[str, Any]:
        weights, mode, threshold = rerank_settings(body.model_dump(exclude={"selfrag"}))
        try:
            row = rerank(body.selfrag, weights, mode=mode, threshold=threshold)
        except InputError as err:
            raise RequestError(400, str(err), "selfrag") from None
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
            raise RequestError(400, f"selfrag is not a trace as /v1/chat/completions returns it "
                                    f"({type(err).__name__}: {err})", "selfrag") from None
        return {"object": "selfrag.rerank", "selfrag": row, "weights": dataclasses.asdict(weights), "mode": mode,
                "threshold": threshold}

    return Guard(app, api_key=server.api_key, max_body_bytes=server.max_body_bytes)


def open_app(serve: ServeConfig, *, close_engine: bool = True) -> Any:
    """Load the model of `serve` and build the app around it."""
    engine = ServingEngine(SelfRAGPredictor.open(serve.decode))
    return create_app(engine, serve, close_engine=close_engine)


def serve(config: ServeConfig) -> None:
    """Load the model and serve until interrupted."""
    import uvicorn

    server = config.server
    if not server.is_loopback and server.api_key is None:
        log.warning("server.host=%s accepts connections from other machines and server.api_key is null: anyone "
                    "who can reach this port can use the model", server.host)
    app = open_app(config)
    print(f"serving {config.model_name} on http://{server.host}:{server.port}  (page: /, API: /v1/chat/completions, "
          f"auth: {'bearer key' if server.api_key else 'none'})", flush=True)
    uvicorn.run(app, host=server.host, port=server.port, log_level=server.log_level)


class ServerThread:
    """Run an ASGI app with uvicorn on a loopback port in a daemon thread (tests, benchmarks).

    Args:
        app: the app (`create_app` / `open_app`).
        host: where to bind (loopback).
        port: 0 picks a free port; `url` says which.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="selfrag-server", daemon=True)
        self.host = host

    def start(self, timeout: float = 60.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
