"""Token counts: estimates for live figures, before (or without) the provider's own count,
and a prompt's exact count where the model's own tokenizer is at hand (a loaded embedded one).

OpenAI's gpt-4o / 4.1 / 5 / o-series use o200k_base; everything else is estimated with
cl100k_base, which is close enough for a live `~` figure and never shown as exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from providers.base import Message, ProviderError
from providers.embedded import EmbeddedProvider
from providers.registry import Registry, Target, TargetError
from workbench import locations

if TYPE_CHECKING:  # tiktoken costs ~0.2 s to import: paid at the first count, not at start-up
    import tiktoken

_O200K_MODELS = re.compile(r"^(?:.*/)?(?:gpt-4o|gpt-4\.1|gpt-5|o\d|chatgpt-4o|gpt-oss)")

# OpenAI's documented chat framing: a few tokens per message and for the reply's start.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def encoding_name(model: str) -> str:
    return "o200k_base" if _O200K_MODELS.match(model.lower()) else "cl100k_base"


class PromptCounter(Protocol):
    """Counts the tokens of a request's prompt: its messages, their framing, the reply's start."""

    @property
    def exact(self) -> bool:
        """True when this is the model's own count, which needs no margin for error."""
        ...

    def count_messages(self, messages: Iterable[Message]) -> int: ...


class TokenEstimator:
    """Counts tokens of text pieces; O(len(piece)) per call, never re-reading the whole answer."""

    exact = False

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding

    @property
    def name(self) -> str:
        return self._encoding.name

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def count_messages(self, messages: Iterable[Message]) -> int:
        total = _REPLY_PRIMING
        for message in messages:
            total += _PER_MESSAGE + self.count(message.role) + self.count(message.content)
        return total


class ExactCounter:
    """A model's own count of a whole prompt, chat template included."""

    exact = True

    def __init__(
        self, count: Callable[[Sequence[Message]], int], fallback: Callable[[], TokenEstimator]
    ) -> None:
        self._count = count
        self._fallback = fallback

    def count_messages(self, messages: Iterable[Message]) -> int:
        listed = list(messages)
        try:
            return self._count(listed)
        except Exception:
            # A chat template may refuse messages on purpose (Gemma's raises on a system
            # prompt): that is for the request itself to report, in its pane, not for a
            # count taken before it to crash the app. The estimate stands in.
            return self._fallback().count_messages(listed)


def counter_for(target: Target, registry: Registry | None = None) -> PromptCounter:
    """The exact count where the target's model can give it (an embedded model already loaded
    in `registry`), else the estimate. Never loads a model for a count."""
    if registry is not None and target.provider == EmbeddedProvider.name:
        try:
            provider = registry.get(target.provider)
        except (TargetError, ProviderError):
            provider = None
        if isinstance(provider, EmbeddedProvider):
            count = provider.prompt_counter(target.model)
            if count is not None:
                return ExactCounter(count, lambda: estimator_for(target.provider, target.model))
    return estimator_for(target.provider, target.model)


def estimator_for(provider: str, model: str) -> TokenEstimator:
    from workbench.engine import encodings

    del provider  # the model name alone decides the encoding today
    encoding = encodings.get_encoding(encoding_name(model), locations.data_dir() / "tiktoken")
    return TokenEstimator(encoding)


def warm(models: Iterable[str] | None = None) -> None:
    """Load the encodings these models need (all, without models) now, so the first prompt
    does not wait for them. Only those: each costs ~0.5 s and o200k_base ~75 MB of RSS."""
    from workbench.engine import encodings

    names = {encoding_name(m) for m in models} if models is not None else _ALL
    for name in sorted(names):
        encodings.get_encoding(name, locations.data_dir() / "tiktoken")


_ALL = {"cl100k_base", "o200k_base"}
