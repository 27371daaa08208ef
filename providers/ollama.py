"""Ollama's native API (`/api/chat`), through the official `ollama` AsyncClient."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from providers.base import (
    ChatRequest,
    Done,
    ModelInfo,
    ProviderError,
    ReasoningDelta,
    ResourceUsage,
    ServerTimings,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import status_error, transport_error

if TYPE_CHECKING:
    import ollama as ollama_sdk

DEFAULT_HOST = "http://127.0.0.1:11434"
_NS = 1e-9


def normalize_host(value: str | None) -> str:
    """`OLLAMA_HOST` as Ollama itself reads it: scheme and port optional, 0.0.0.0 means here."""
    value = (value or "").strip()
    if not value:
        return DEFAULT_HOST
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}{parts.path.rstrip('/')}"


class OllamaProvider:
    def __init__(
        self,
        name: str = "ollama",
        *,
        host: str | None = None,
        is_local: bool = True,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.is_local = is_local
        self.host = normalize_host(host)
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._client: ollama_sdk.AsyncClient | None = None

    def _sdk(self) -> ollama_sdk.AsyncClient:
        if self._client is None:
            import httpx
            import ollama as ollama_sdk

            self._client = ollama_sdk.AsyncClient(
                host=self.host,
                timeout=httpx.Timeout(self._read_timeout_s, connect=self._connect_timeout_s),
            )
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._sdk()
        p = request.params
        options: dict[str, Any] = {}
        if p.temperature is not None:
            options["temperature"] = p.temperature
        if p.top_p is not None:
            options["top_p"] = p.top_p
        if p.max_tokens is not None:
            options["num_predict"] = p.max_tokens
        if p.seed is not None:
            options["seed"] = p.seed
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        parts: Any = None
        try:
            parts = await client.chat(
                model=request.model, messages=messages, stream=True, options=options or None
            )
            async for part in parts:
                message = part.message
                if message is not None:
                    if message.thinking:
                        yield ReasoningDelta(message.thinking)
                    if message.content:
                        yield TextDelta(message.content)
                if part.done:
                    yield Usage(int(part.prompt_eval_count or 0), int(part.eval_count or 0))
                    yield ServerTimings(
                        prompt_s=_seconds(part.prompt_eval_duration),
                        decode_s=_seconds(part.eval_duration),
                        load_s=_seconds(part.load_duration),
                    )
                    yield Done(part.done_reason or "stop")
                    return
        except asyncio.CancelledError:
            await _close(parts)
            raise
        except Exception as exc:
            await _close(parts)
            raise self._translate(exc, request.model) from None
        raise ProviderError(
            "connection", f"Ollama at {self.host} closed the stream before it was done"
        )

    def _translate(self, exc: BaseException, model: str) -> ProviderError:
        import ollama as ollama_sdk

        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, ollama_sdk.ResponseError):
            status = exc.status_code
            if status == -1 or status < 400:
                # An {"error": ...} line in the middle of a stream that began with 200.
                return ProviderError("server", f"Ollama: {exc.error}")
            return status_error(
                status,
                exc.error,
                target=f"{self.name}:{model}",
                not_found_hint=f" — fetch it with `ollama pull {model}`",
            )
        if isinstance(exc, ValueError | KeyError | TypeError):
            return ProviderError("protocol", f"Ollama at {self.host} sent a line we cannot read")
        hint = " — start it with `ollama serve`"
        error = transport_error(exc, f"Ollama at {self.host}", hint=hint)
        if error.kind == "connection" and "refused" in error.message:
            return ProviderError("connection", f"Ollama is not running at {self.host}{hint}")
        return error

    async def version(self) -> str:
        """The server's version; raises `ProviderError` when it does not answer."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self._connect_timeout_s) as http:
                reply = await http.get(f"{self.host}/api/version")
                reply.raise_for_status()
                return str(reply.json().get("version", "?"))
        except Exception as exc:
            raise self._translate(exc, "version") from None

    async def list_models(self) -> list[ModelInfo]:
        client = self._sdk()
        try:
            listing = await client.list()
            infos = []
            for entry in listing.models:
                name = entry.model or ""
                details = entry.details
                infos.append(
                    ModelInfo(
                        id=name,
                        context_length=await self._context_length(name),
                        size_bytes=entry.size,
                        parameter_size=details.parameter_size if details else None,
                        quantization=details.quantization_level if details else None,
                        is_local=self.is_local,
                    )
                )
        except Exception as exc:
            raise self._translate(exc, "models") from None
        return infos

    async def _context_length(self, model: str) -> int | None:
        shown = await self._sdk().show(model)
        info = shown.modelinfo or {}
        arch = info.get("general.architecture")
        value = info.get(f"{arch}.context_length") if arch else None
        return int(value) if isinstance(value, int | float) else None

    async def resources(self) -> ResourceUsage | None:
        try:
            running = await self._sdk().ps()
        except Exception:
            return None
        if not running.models:
            return None
        size = sum(m.size or 0 for m in running.models)
        vram = sum(m.size_vram or 0 for m in running.models)
        names = ", ".join(m.model or "?" for m in running.models)
        return ResourceUsage(memory_bytes=size, vram_bytes=vram, detail=names)

    async def aclose(self) -> None:
        self._client = None


def _seconds(ns: int | None) -> float | None:
    return ns * _NS if ns else None


async def _close(parts: Any) -> None:
    closer = getattr(parts, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()
