"""OpenAIJudge: a Labeler that asks any OpenAI-compatible chat endpoint (a vLLM server, a hosted API) for labels.

Per item it sends `critic.judge_prompts.judge_messages(item)` and parses the reply with
`critic.parsing.parse_judge_reply`. Around that sit the things a labelling job of tens of thousands of requests needs:

- transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential backoff and jitter,
  counted by us (the client's own retries are off, so `max_retries` means what it says); other 4xx stop the job with
  the server's message, since they mean a wrong model name, key or URL that no retry fixes;
- an unparseable reply is re-asked up to `max_parse_retries` times with a note saying what was wrong; an item whose
  replies never parse gets None and a `JudgeFailure` on `judge.failures`;
- requests run concurrently on a thread pool (`max_concurrency`);
- replies that parsed are cached in sqlite, keyed by everything that determines them, so a re-run of the same job
  (after a crash, or with one more aspect) sends no request for what it already has.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from critic.aspects import ASPECT_LABELS, Label, LabelItem
from critic.judge_prompts import judge_messages
from critic.parsing import JudgeReplyError, parse_judge_reply
from selfrag.io import InputError, ServiceError

Messages = list[dict[str, str]]

#: Where the judge sends requests when no base_url is given: a local `vllm serve` (sent no key but an explicit one).
LOCAL_BASE_URL = "http://127.0.0.1:8000/v1"


class JudgeRequestError(ServiceError):
    """The endpoint refused a request (a non-retryable 4xx) or kept failing after all retries.

    A `ServiceError`: scripts report it as one `error:` line (exit status 2), the message naming what to check.
    """


def api_key_for(base_url: str | None, api_key: str | None) -> str:
    """The key to send: a key goes only to the endpoint it was given for.

    - an explicit `api_key` is sent to `base_url`, whatever it is (the caller paired them);
    - `$OPENAI_API_KEY` is sent only to an explicitly given `base_url` (the user chose that endpoint for it), never
      to the local default a config falls back to: a credential must not leak to whatever listens on a port;
    - otherwise "EMPTY" (what a vLLM server without `--api-key` accepts).
    """
    if api_key:
        return api_key
    if base_url:
        return os.environ.get("OPENAI_API_KEY") or "EMPTY"
    return "EMPTY"


@dataclass
class JudgeStats:
    """Counters over a judge's lifetime.

    Attributes:
        requests: HTTP requests sent, each retry and re-ask included.
        cache_hits: items answered from the cache without a request.
        retries: requests repeated after a transient failure (connection error, timeout, 429, 5xx).
        parse_failures: replies that did not parse (each re-asked reply counts once).
    """

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    parse_failures: int = 0


@dataclass(frozen=True)
class JudgeFailure:
    """An item the judge could not label: its replies never parsed. `error` quotes the last reply."""

    aspect: str
    id: str
    error: str
    reply: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cache_key(model: str, messages: Messages, temperature: float, max_tokens: int) -> str:
    """sha256 over everything that determines a reply (canonical JSON, so dict order does not matter)."""
    payload = json.dumps([model, messages, temperature, max_tokens], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ReplyCache:
    """A sqlite table key -> raw reply, safe to share between the judge's threads.

    Each put commits, so a killed job keeps every reply it received. WAL mode lets a second process read while one
    writes (two jobs over one cache file).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, reply TEXT NOT NULL, "
                "created REAL)"
            )
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise InputError(
                f"{self.path}: not usable as a judge reply cache ({err}); give another cache_path or delete the file"
            ) from None

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, reply: str, model: str = "") -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, model, reply, created) VALUES (?, ?, ?, ?)",
                (key, model, reply, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as err:
        raise ImportError(
            "OpenAIJudge needs the openai client: pip install openai (or pip install -e '.[critic]')"
        ) from err
    return openai


def _retryable_status(status: int) -> bool:
    # 408 is a server-side timeout, the same situation as a client timeout.
    return status in (408, 429) or status >= 500


def _server_message(err: Any) -> str:
    """The human-readable message in an error body: OpenAI's {"error": {"message"}}, vLLM's {"message"}, or raw."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(err, "message", None) or err)


def _retry_after(err: Any) -> float | None:
    """Seconds from a Retry-After header, if the server sent one as a number."""
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare, and the exponential backoff covers it
        return None


class OpenAIJudge:
    """Labels items with an LLM behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Args:
        model: the model name the endpoint serves (for vLLM, the `--served-model-name` or the path it was given).
        base_url: the endpoint including `/v1` (e.g. `https://api.openai.com/v1`, `http://host:8000/v1`); None = a local
            `vllm serve` at `LOCAL_BASE_URL`.
        api_key: the key to send; None = `$OPENAI_API_KEY` for an explicit `base_url`, else "EMPTY" (`api_key_for`:
            the environment's key is never sent to the local default).
        temperature, max_tokens: sampling settings sent with every request (and part of the cache key).
        timeout: seconds per request before it counts as a (retryable) timeout.
        max_concurrency: requests in flight at once.
        max_retries: retries per request after transient failures; then `JudgeRequestError`.
        backoff_base_s, backoff_max_s: the delay before retry k is drawn from [c/2, c] with
            c = min(backoff_max_s, backoff_base_s * 2**k) ("equal jitter": spreads clients out, still grows); a
            server's Retry-After raises it up to backoff_max_s.
        max_parse_retries: re-asks after a reply that does not parse; then the item gets None.
        cache_path: sqlite file of parsed replies, shared across runs; None = no cache.
        sleep: called with each backoff delay (tests inject a recorder instead of waiting).

    Attributes:
        name: `judge:<model>`, the `labeler` of every Label it returns.
        failures: `JudgeFailure`s of items whose replies never parsed, cumulative over `label` calls (a script that
            labels in chunks writes them out and clears the list).
        stats: `JudgeStats`.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 200,
        timeout: float = 60.0,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_parse_retries: int = 2,
        cache_path: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for key, value, low in (("max_concurrency", max_concurrency, 1), ("max_retries", max_retries, 0),
                                ("max_parse_retries", max_parse_retries, 0), ("max_tokens", max_tokens, 1)):
            if value < low:
                raise InputError(f"judge {key}={value} is invalid; it must be an integer >= {low}")
        if not model or model == "???":  # "???": Hydra's mark of a required value left unset
            raise InputError("the judge's model is not set; give the model name the endpoint serves "
                             "(teacher.model=NAME)")
        self._openai = _import_openai()
        self.model = model
        self.base_url = base_url or LOCAL_BASE_URL
        self.name = f"judge:{model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_parse_retries = max_parse_retries
        self._sleep = sleep
        # max_retries=0: the client must not retry behind our back, or `max_retries` and `stats` would lie.
        self._client = self._openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key_for(base_url, api_key),
            timeout=timeout,
            max_retries=0,
        )
        self._cache = ReplyCache(cache_path) if cache_path is not None else None
        self._lock = threading.Lock()
        self.stats = JudgeStats()
        self.failures: list[JudgeFailure] = []

    # -- public ------------------------------------------------------------------------------------------------------

    def label(self, items: Sequence[LabelItem]) -> list[Label | None]:
        """One Label per item in input order (explanation filled), or None where the replies never parsed.

        Items with identical prompts are asked once. Items missing a field their aspect needs raise InputError before
        any request is sent.

        Raises:
            InputError: an item lacks a field its aspect needs.
            JudgeRequestError: the endpoint refused a request (non-retryable 4xx) or kept failing after retries;
                replies received before that are already cached.
        """
        messages = [judge_messages(item) for item in items]  # validates every item before spending anything
        keys = [cache_key(self.model, m, self.temperature, self.max_tokens) for m in messages]
        unique: dict[str, tuple[str, Messages]] = {}
        for item, key, msgs in zip(items, keys, messages):
            unique.setdefault(key, (item.aspect, msgs))

        results: dict[str, tuple[str, str] | JudgeReplyError] = {}
        if unique:
            pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(unique)),
                                      thread_name_prefix="judge")
            try:
                futures = {key: pool.submit(self._judge, aspect, msgs, key) for key, (aspect, msgs) in unique.items()}
                for key, future in futures.items():
                    results[key] = future.result()
            finally:
                # On an error, drop the queued requests (the running ones finish and are cached).
                pool.shutdown(wait=True, cancel_futures=True)

        labels: list[Label | None] = []
        for item, key in zip(items, keys):
            result = results[key]
            if isinstance(result, JudgeReplyError):
                with self._lock:
                    self.failures.append(JudgeFailure(item.aspect, item.id, str(result), result.reply))
                labels.append(None)
            else:
                label, explanation = result
                labels.append(Label(item.aspect, item.id, label, self.name, explanation=explanation))
        return labels

    def close(self) -> None:
        """Close the HTTP client and the cache."""
        self._client.close()
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------------

    def _count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + n)

    def _judge(self, aspect: str, messages: Messages, key: str) -> tuple[str, str] | JudgeReplyError:
        """(label, explanation) for one prompt, from the cache or the endpoint; the last parse error if none parsed."""
        if self._cache is not None and (cached := self._cache.get(key)) is not None:
            try:
                parsed = parse_judge_reply(aspect, cached)
            except JudgeReplyError:
                pass  # written under another parser's rules: ask again and overwrite
            else:
                self._count("cache_hits")
                return parsed
        asked = messages
        error: JudgeReplyError | None = None
        for _ in range(self.max_parse_retries + 1):
            reply = self._complete(asked)
            try:
                parsed = parse_judge_reply(aspect, reply)
            except JudgeReplyError as err:
                self._count("parse_failures")
                error = err
                asked = _reask(messages, err)
                continue
            if self._cache is not None:
                # Keyed by the original prompt, whichever attempt parsed, so a re-run finds it without a request.
                self._cache.put(key, reply, self.model)
            return parsed
        assert error is not None
        return error

    def _complete(self, messages: Messages) -> str:
        """The reply text of one chat completion, retrying transient failures with backoff."""
        openai = self._openai
        where = self.base_url
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                self._sleep(self._backoff(attempt - 1, _retry_after(last)))
            self._count("requests")
            try:
                response = self._client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens
                )
            except openai.APIStatusError as err:
                if not _retryable_status(err.status_code):
                    hint = " (check that base_url ends with /v1 and the model name)" if err.status_code == 404 else ""
                    raise JudgeRequestError(
                        f"{where} refused the request with HTTP {err.status_code}: {_server_message(err)}{hint}"
                    ) from None
                last = err
            except openai.APIConnectionError as err:  # also timeouts (APITimeoutError subclasses it)
                last = err
            else:
                # A reply without choices or content is just an unparseable reply (re-asked), not a transport error.
                choices = response.choices or []
                return (choices[0].message.content or "") if choices else ""
        detail = _server_message(last) if isinstance(last, openai.APIStatusError) else repr(last)
        raise JudgeRequestError(
            f"{where}: request failed {self.max_retries + 1} times (last error: {detail}); check that the server is "
            f"up, or raise max_retries / timeout"
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * 2.0**attempt)
        delay = cap / 2 + random.uniform(0.0, cap / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay


def _reask(messages: Messages, err: JudgeReplyError) -> Messages:
    """The original prompt with a note on why the last reply was rejected, appended to the final user turn.

    The note goes into the same turn (rather than a new exchange) so the request still ends with the item itself; the
    changed text also keeps a temperature-0 server from returning the same bad reply.
    """
    labels = ", ".join(ASPECT_LABELS[err.aspect])
    note = (
        f"\n\nYour previous reply could not be used ({err.reason}). Reply again in exactly two lines: "
        f"'Label: <one of {labels}>' and 'Explanation: <one sentence>'."
    )
    last = messages[-1]
    return [*messages[:-1], {**last, "content": last["content"] + note}]
