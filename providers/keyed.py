"""What the OpenAI and Anthropic adapters share: a base URL, a key from a named variable,
timeouts, and a model list from the server or the config."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import ModelInfo, ProviderError, ResourceUsage
from providers.errors import transport_error


class KeyedAPI:
    """Base for adapters whose SDK takes an API key; the SDK itself is the subclass's."""

    default_url: ClassVar[str]
    _client: Any = None

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        is_local: bool = False,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 60.0,
        models: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.is_local = is_local
        self.base_url = base_url
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._configured_models = models

    @property
    def _where(self) -> str:
        return f"{self.name} at {self.base_url or self.default_url}"

    @property
    def _secrets(self) -> list[str]:
        return [self._api_key] if self._api_key else []

    def _key(self) -> str:
        """The key to send; a missing one is an error only now, when a target needs it."""
        if not self._api_key and self._api_key_env:
            raise ProviderError(
                "auth", f"{self._api_key_env} is not set — export it to use {self.name} targets"
            )
        # A local server needs no key, but the SDKs insist on one.
        return self._api_key or "not-needed"

    def _sdk(self) -> Any:
        raise NotImplementedError

    async def prepare(self) -> None:
        self._sdk()

    def _translate(self, exc: BaseException, model: str) -> ProviderError:
        raise NotImplementedError

    def _timeout(self, exc: BaseException) -> ProviderError:
        """The SDKs' timeout error, told apart: never connected, or stopped sending."""
        error = transport_error(exc.__cause__ or exc, self._where)
        if error.kind != "timeout":
            error = ProviderError("timeout", f"{self._where} stopped sending (read timeout)")
        return error

    async def _listed(self) -> list[ModelInfo]:
        try:
            page = await self._sdk().models.list()
            found = {m.id: listed_window(getattr(m, "model_extra", None)) async for m in page}
        except ProviderError:
            raise
        except Exception as exc:
            raise self._translate(exc, "models") from None
        return [ModelInfo(i, found[i], is_local=self.is_local) for i in sorted(found)]

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def list_models(self) -> list[ModelInfo]:
        if self._configured_models:
            return [ModelInfo(i, is_local=self.is_local) for i in self._configured_models]
        return await self._listed()

    async def resources(self) -> ResourceUsage | None:
        return None


def listed_window(extra: object) -> int | None:
    """A model's context window where an OpenAI-compatible server lists it beside the id:
    llama-server's `meta.n_ctx` (the window it runs with, per slot), vLLM's
    `max_model_len`, OpenRouter's and LM Studio's `context_length`."""
    if not isinstance(extra, dict):
        return None
    meta = extra.get("meta")
    for value in (meta.get("n_ctx") if isinstance(meta, dict) else None,
                  extra.get("max_model_len"), extra.get("context_length")):  # fmt: skip
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
