"""Request bodies of the server's endpoints (pydantic), and how a chat request becomes a question and settings.

The shapes are checked here (a list where a list belongs, no unknown key inside `selfrag`); the values of decoding
settings are deliberately typed `Any` so that the library's own checks (`selfrag.serving.config.request_decoding`,
which runs `DecodingConfig`) judge them, with the CLI's rules and messages, rather than pydantic coercing `"1"` to 1.0.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from selfrag.serving.config import REQUEST_DECODING_KEYS, RequestError


class PassageIn(BaseModel):
    """A passage supplied by the caller instead of the retriever (as a `ctxs` entry of an eval file)."""

    model_config = ConfigDict(extra="forbid")

    title: StrictStr = ""
    text: StrictStr
    id: StrictStr | None = None


class SelfRAGOptions(BaseModel):
    """The `selfrag` object of a chat request: decoding settings (null or absent: the server's) and passages."""

    model_config = ConfigDict(extra="forbid")

    w_rel: Any = None
    w_sup: Any = None
    w_use: Any = None
    use_seqscore: Any = None
    mode: Any = None
    threshold: Any = None
    ndocs: Any = None
    max_new_tokens: Any = None
    long_form: Any = None
    beam_width: Any = None
    max_depth: Any = None
    score_all_paths: Any = None
    passages: list[PassageIn] | None = Field(default=None, description="static passages, used instead of retrieval")

    def decoding_overrides(self) -> dict[str, Any]:
        """The decoding settings the request gave (absent keys are the server's; a `null` weight is the library
        default, as in a config)."""
        given = self.model_dump(exclude_unset=True)
        return {k: given[k] for k in REQUEST_DECODING_KEYS if k in given}


class ContentPart(BaseModel):
    """One part of a message's content in the list form (`{"type": "text", "text": ...}`)."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    """One chat message; only the last `user` message is read (system and earlier turns are ignored)."""

    model_config = ConfigDict(extra="allow")

    role: StrictStr
    content: StrictStr | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined by newlines)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text or "" for p in self.content or [] if p.type == "text")


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`: OpenAI's body (sampling options are accepted and ignored: decoding is greedy) plus
    `selfrag`."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    messages: list[ChatMessage]
    selfrag: SelfRAGOptions | None = None
    max_tokens: Any = None
    max_completion_tokens: Any = None
    stream: bool | None = None
    n: int | None = None

    def question(self, max_chars: int) -> str:
        """The last user message's text.

        Raises:
            RequestError: 400 when there is no user message, it is empty, or longer than `max_chars`.
        """
        users = [i for i, m in enumerate(self.messages) if m.role == "user"]
        if not users:
            raise RequestError(400, "messages has no message with role 'user'; the last user message is the question",
                               "messages")
        index = users[-1]
        text = self.messages[index].text().strip()
        if not text:
            raise RequestError(400, f"messages[{index}] (the last user message) is empty", f"messages[{index}].content")
        if len(text) > max_chars:
            raise RequestError(400, f"messages[{index}].content is {len(text)} characters; the server takes at most "
                                    f"{max_chars} (server.max_question_chars)", f"messages[{index}].content")
        return text

    def decoding_overrides(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(settings, the request field each came from): `selfrag.*`, and OpenAI's `max_completion_tokens` /
        `max_tokens` as `max_new_tokens` unless `selfrag.max_new_tokens` is given.

        Raises:
            RequestError: 400 for `stream: true` or `n` other than 1, which this server does not do.
        """
        if self.stream:
            raise RequestError(400, "stream=true is not supported; the whole answer and its trace come in one response",
                               "stream")
        if self.n not in (None, 1):
            raise RequestError(400, f"n must be 1 (one greedy answer per request), got {self.n}", "n")
        overrides = self.selfrag.decoding_overrides() if self.selfrag else {}
        params: dict[str, str] = {}
        if "max_new_tokens" not in overrides:
            for name in ("max_completion_tokens", "max_tokens"):
                value = getattr(self, name)
                if value is not None:
                    overrides["max_new_tokens"] = value
                    params["max_new_tokens"] = name
                    break
        return overrides, params


class RerankRequest(BaseModel):
    """`POST /v1/selfrag/rerank`: a returned trace and the weights (and, short form, mode/threshold) to re-decide it
    under; `null` or absent means as in `scripts/rerank.py` (library default weights, saved retrieval decision)."""

    model_config = ConfigDict(extra="forbid")

    selfrag: dict[str, Any]
    w_rel: Any = None
    w_sup: Any = None
    w_use: Any = None
    use_seqscore: Any = None
    mode: Any = None
    threshold: Any = None
