"""The one protocol every provider speaks: requests in, stream events out.

Nothing here knows an SDK; each provider module translates its SDK into these types.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, runtime_checkable

Role = Literal["system", "user", "assistant"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    private: bool = False
    """Marked private by the user (or an answer to such a prompt): only local targets get it."""


@dataclass(frozen=True, slots=True)
class GenParams:
    """Sampling settings; None means "the provider's default"."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def options(self, *, max_tokens: str = "max_tokens") -> dict[str, float | int]:
        """The settings that are set, named as most APIs name them."""
        named = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            max_tokens: self.max_tokens,
            "seed": self.seed,
        }
        return {key: value for key, value in named.items() if value is not None}

    def merged(self, other: GenParams) -> GenParams:
        """These settings with every value that `other` sets taking precedence."""
        return GenParams(
            temperature=_first(other.temperature, self.temperature),
            top_p=_first(other.top_p, self.top_p),
            max_tokens=_first(other.max_tokens, self.max_tokens),
            seed=_first(other.seed, self.seed),
        )


def _first(preferred: _T | None, fallback: _T | None) -> _T | None:
    return fallback if preferred is None else preferred


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    params: GenParams = field(default_factory=GenParams)

    @property
    def system(self) -> str | None:
        """The system prompt, for APIs that take it apart from the turns."""
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> list[Message]:
        return [m for m in self.messages if m.role != "system"]


# --- stream events -------------------------------------------------------------


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(delta: TextDelta | ReasoningDelta) -> None:
    # JSON may escape half a surrogate pair; such a str cannot be encoded as UTF-8 (for the
    # terminal, SQLite, or the next request), so it becomes U+FFFD where it enters.
    if _LONE_SURROGATE.search(delta.text):
        object.__setattr__(delta, "text", _LONE_SURROGATE.sub("\ufffd", delta.text))


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Visible answer text, in order."""

    text: str

    def __post_init__(self) -> None:
        _encodable(self)


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Text a thinking model produced before its answer; shown apart from it."""

    text: str

    def __post_init__(self) -> None:
        _encodable(self)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as reported by the server, or counted by the model's tokenizer.

    `input_tokens` includes cached input tokens; `cached_input_tokens` says how many of them.
    A count the server did not send is None, not 0: the engine estimates that one alone, and
    the other stays the server's exact figure.
    """

    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int = 0
    exact: bool = True
    """False when the counts given are the provider's own estimates."""


@dataclass(frozen=True, slots=True)
class ServerTimings:
    """Durations the server measured itself, in seconds (None where it does not say)."""

    prompt_s: float | None = None
    decode_s: float | None = None
    load_s: float | None = None
    queue_s: float | None = None
    """How long the request waited for a model another request was using (embedded)."""


@dataclass(frozen=True, slots=True)
class Status:
    """A note about the request that is not answer text (e.g. "queued behind another")."""

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """Sent exactly once, last, when the stream ended successfully."""

    stop_reason: str | None = None


StreamEvent = TextDelta | ReasoningDelta | Usage | ServerTimings | Status | Done


# --- errors --------------------------------------------------------------------

ErrorKind = Literal[
    "offline",
    "connection",
    "timeout",
    "auth",
    "not_found",
    "rate_limited",
    "overloaded",
    "bad_request",
    "server",
    "protocol",
]
UNREACHABLE: frozenset[ErrorKind] = frozenset({"offline", "connection", "timeout"})
"""Kinds that say the server cannot be reached, rather than that it refused something."""


class ProviderError(Exception):
    """A failure a person can act on; `message` says what to do."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ProviderError({self.kind!r}, {self.message!r})"


# --- models and resources ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    context_length: int | None = None
    """The window the model runs with (or would, loaded now), in tokens."""
    size_bytes: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    is_local: bool = False
    kv_bytes_per_token: int | None = None
    """f16 KV cache per token of context, for memory estimates of local models."""
    trained_context: int | None = None
    """The longest context the model was trained for (GGUF `<arch>.context_length`), where
    known; `context_length` is the window it runs with, which may be smaller."""


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """Memory held by loaded local models, in bytes."""

    memory_bytes: int
    vram_bytes: int = 0
    detail: str = ""


@runtime_checkable
class Provider(Protocol):
    """A thin adapter from one SDK to the stream-event protocol."""

    name: str
    is_local: bool

    async def prepare(self) -> None:
        """Get ready to send (import the SDK, build the client) before the clock starts."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def resources(self, model: str | None = None) -> ResourceUsage | None:
        """Memory held for `model` where the provider can tell its models apart, else (or
        with no `model`) all it holds; `detail` says what was measured."""
        ...

    async def aclose(self) -> None: ...
