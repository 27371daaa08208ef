"""Ollama's native API (`/api/chat`), through the official `ollama` AsyncClient."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
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
from providers.errors import (
    Malformed,
    cut_short,
    error_body_text,
    failed_mid_answer,
    json_field,
    not_an_event_stream,
    redact,
    status_error,
    token_count,
    transport_error,
    unreadable,
)
from providers.gguf import kv_cache_bytes_per_token

if TYPE_CHECKING:
    import httpx
    import ollama as ollama_sdk

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_NUM_CTX = 4096
"""The window Ollama gives a model when neither the request, the model's Modelfile (`PARAMETER
num_ctx`) nor the server (`OLLAMA_CONTEXT_LENGTH`) sets one: 4096 below 24 GiB of VRAM, 32k up
to 48 GiB, 256k above (docs/context-length.mdx); older releases gave 2048. Assumed only until
`/api/ps` says what a loaded model runs with: the lowest of them, as a window taken too small
only summarizes early, where one taken too large lets Ollama drop the oldest turns unseen."""
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
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 60.0,
        num_ctx: int | None = None,
    ) -> None:
        self.name = name
        self.is_local = is_local
        self.host = normalize_host(host)
        self.num_ctx = num_ctx
        """The window to run every model with, sent as `num_ctx`; None leaves it to Ollama."""
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
                event_hooks={"response": [_raise_for_status]},
            )
        return self._client

    async def prepare(self) -> None:
        self._sdk()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._sdk()
        options: dict[str, float | int] = request.params.options(max_tokens="num_predict")
        if self.num_ctx is not None:
            options["num_ctx"] = self.num_ctx
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        parts: Any = None
        begun = False
        try:
            parts = await client.chat(
                model=request.model, messages=messages, stream=True, options=options or None
            )
            final: Any = None
            async for part in parts:
                begun = True
                message = part.message
                if message is not None:
                    if message.thinking:
                        yield ReasoningDelta(message.thinking)
                    if message.content:
                        yield TextDelta(message.content)
                if part.done:
                    # Read on to the end of the body, so the connection goes back to the pool.
                    final = part
        except (asyncio.CancelledError, GeneratorExit):
            # GeneratorExit: the consumer stopped early (a guard); the connection still closes.
            await _close(parts)
            raise
        except Exception as exc:
            await _close(parts)
            raise self._translate(exc, request.model, mid_stream=begun) from None
        if final is None:
            raise cut_short(f"Ollama at {self.host}")
        try:
            usage = _usage(final)
        except Malformed as exc:
            raise unreadable(f"Ollama at {self.host}", "a line", exc) from None
        if usage is not None:
            yield usage
        yield ServerTimings(
            prompt_s=_seconds(final.prompt_eval_duration),
            decode_s=_seconds(final.eval_duration),
            load_s=_seconds(final.load_duration),
        )
        yield Done(final.done_reason or "stop")

    def _translate(
        self, exc: BaseException, model: str | None, *, mid_stream: bool = False
    ) -> ProviderError:
        """The exception as a `ProviderError`; `model` is None when no model was asked for."""
        import httpx
        import ollama as ollama_sdk

        if isinstance(exc, ProviderError):
            return exc
        where = f"Ollama at {self.host}"
        if isinstance(exc, httpx.HTTPStatusError):
            reply = exc.response
            # Ollama says which model it lacks in JSON; a plain 404 is another server's.
            foreign = reply.status_code == 404 and not _ollama_error(reply)
            error = self._status(
                reply.status_code, _error_text(reply), model, reply.headers, foreign=foreign
            )
        elif isinstance(exc, ollama_sdk.ResponseError) and exc.status_code >= 400:
            error = self._status(exc.status_code, exc.error, model)
        elif isinstance(exc, ollama_sdk.ResponseError):
            # An {"error": ...} line in the middle of a stream that began with 200.
            target = f"{self.name}:{model}" if model else self.name
            error = failed_mid_answer("server", target, exc.error)
        elif isinstance(exc, ValueError | KeyError | TypeError):
            error = unreadable(where, "a line", _readable(exc))
        else:
            hint = " — start it with `ollama serve`"
            https = self.host.startswith("https://")
            error = transport_error(exc, where, hint=hint, mid_stream=mid_stream, https=https)
            if error.kind == "connection" and "refused" in error.message:
                error = ProviderError("connection", f"Ollama is not running at {self.host}{hint}")
        # The ollama client sends OLLAMA_API_KEY, and a server may echo it back.
        secrets = [os.environ.get("OLLAMA_API_KEY", "")]
        return ProviderError(error.kind, redact(error.message, secrets), error.retry_after)

    def _status(
        self,
        status: int,
        detail: str,
        model: str | None,
        headers: Mapping[str, str] | None = None,
        *,
        foreign: bool = False,
    ) -> ProviderError:
        """`foreign`: the reply is not Ollama's, so pulling the model would not help."""
        if foreign:
            hint = f" — {self._not_ollama()}"
        else:
            hint = f" — fetch it with `ollama pull {model}`" if model else ""
        return status_error(
            status,
            detail,
            target=f"{self.name}:{model}" if model else self.name,
            headers=headers,
            key_env="OLLAMA_API_KEY",
            not_found_hint=hint,
        )

    def _not_ollama(self) -> str:
        if self.name == "ollama":
            return (
                f"the server at OLLAMA_HOST ({self.host}) does not look like Ollama: point"
                " OLLAMA_HOST at Ollama, or name this server as an endpoint of its own kind"
            )
        return (
            f"the server at {self.host} does not look like Ollama: check base_url in"
            f" [endpoints.{self.name}], and its kind"
        )

    async def version(self) -> str:
        """The server's version; raises `ProviderError` when it does not answer."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self._connect_timeout_s) as http:
                reply = await http.get(f"{self.host}/api/version")
                reply.raise_for_status()
                return str(reply.json().get("version", "?"))
        except Exception as exc:
            raise self._translate(exc, None) from None

    async def list_models(self) -> list[ModelInfo]:
        client = self._sdk()
        try:
            listing = await client.list()
            running = await self._running()
            infos = []
            for entry in listing.models:
                name = entry.model or ""
                details = entry.details
                shown = await client.show(name)
                info = dict(shown.modelinfo or {})
                infos.append(
                    ModelInfo(
                        id=name,
                        context_length=self._window(name, shown, running),
                        size_bytes=entry.size,
                        parameter_size=details.parameter_size if details else None,
                        quantization=details.quantization_level if details else None,
                        is_local=self.is_local,
                        kv_bytes_per_token=kv_cache_bytes_per_token(info),
                        trained_context=_context_of(info),
                    )
                )
        except Exception as exc:
            raise self._translate(exc, None) from None
        return infos

    async def context_length(self, model: str) -> int | None:
        """The window Ollama runs the model with, which is not the one it was trained for
        (`/api/show` `<arch>.context_length`): a longer conversation is cut, silently."""
        try:
            shown = await self._sdk().show(model)
            running = await self._running()
        except Exception as exc:
            raise self._translate(exc, model) from None
        return self._window(model, shown, running)

    def _window(self, model: str, shown: Any, running: Mapping[str, int]) -> int | None:
        """What the runner has, or will have: the `num_ctx` we send, else what `/api/ps` says
        a loaded model runs with, else the model's own `num_ctx` parameter, else Ollama's
        default; never more than the model was trained for, as Ollama caps it there."""
        trained = _context_of(dict(shown.modelinfo or {}))
        runs = (
            self.num_ctx
            or running.get(_canonical(model))
            or _num_ctx_parameter(shown.parameters)
            or DEFAULT_NUM_CTX
        )
        return min(runs, trained) if trained else runs

    async def _running(self) -> dict[str, int]:
        """`/api/ps`: each loaded model's window, its `context_length` (a server too old to
        send one, or one that does not answer, tells nothing here)."""
        try:
            running = await self._sdk().ps()
        except Exception:
            return {}
        return {
            _canonical(m.model or m.name or ""): int(m.context_length)
            for m in running.models
            if m.context_length
        }

    async def resources(self, model: str | None = None) -> ResourceUsage | None:
        try:
            running = await self._sdk().ps()
        except Exception:
            return None
        if model is not None:
            wanted = _canonical(model)
            for m in running.models:
                if _canonical(m.model or m.name or "") == wanted:
                    return ResourceUsage(
                        memory_bytes=m.size or 0,
                        vram_bytes=m.size_vram or 0,
                        detail=f"/api/ps size of {m.model or m.name}",
                    )
            return None
        if not running.models:
            return None
        size = sum(m.size or 0 for m in running.models)
        vram = sum(m.size_vram or 0 for m in running.models)
        names = ", ".join(m.model or "?" for m in running.models)
        return ResourceUsage(memory_bytes=size, vram_bytes=vram, detail=f"/api/ps size of {names}")

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()  # type: ignore[no-untyped-call]


def _canonical(name: str) -> str:
    """A model name as Ollama matches it: any case, `:latest` when the tag is left out."""
    name = name.strip().casefold()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _num_ctx_parameter(parameters: str | None) -> int | None:
    """`num_ctx` from `/api/show` `parameters`, one `name value` line a Modelfile PARAMETER."""
    for line in (parameters or "").splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "num_ctx":
            with contextlib.suppress(ValueError):
                return int(float(value.strip())) or None
    return None


def _context_of(info: dict[str, Any]) -> int | None:
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    return int(value) if isinstance(value, int | float) else None


def _usage(final: Any) -> Usage | None:
    """The final chunk's counts, each None where the chunk lacks it; None when it has neither.

    Ollama's Go server omits a zero count (omitempty), and leaves `prompt_eval_count` out
    when the prompt came from its cache (ollama/ollama#2068, #3427); a count it did not send
    is unknown, and an exact 0 would show a prompt as free and the answer as never measured.
    The engine estimates only the missing count: `eval_count` is still the server's, exact.
    """
    counts = {"prompt_eval_count": final.prompt_eval_count, "eval_count": final.eval_count}
    prompt, answer = token_count(counts, "prompt_eval_count"), token_count(counts, "eval_count")
    if not prompt and not answer:
        return None
    return Usage(prompt or None, answer or None)


def _readable(exc: BaseException) -> BaseException:
    """A line the ollama client's pydantic models refused, said in a few words as for the
    other providers: its own report runs to lines of types and URLs."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return exc
    for error in errors():
        key = ".".join(str(part) for part in error.get("loc", ()))
        if str(error.get("type", "")).startswith("int_"):
            try:
                json_field({key: error.get("input")}, key, int)
            except Malformed as said:
                return said
        return Malformed(f"`{key}`: {str(error.get('msg', '')).lower()}")
    return exc


def _seconds(ns: int | None) -> float | None:
    return ns * _NS if ns else None


async def _raise_for_status(response: httpx.Response) -> None:
    """An error status raised while its headers are at hand, before the ollama client reads it.

    When streaming, the client's own `ResponseError` keeps only the body, and so would lose
    Retry-After; raised from this hook, `httpx.HTTPStatusError` reaches the provider instead.
    """
    if response.is_error:
        await response.aread()
        response.raise_for_status()
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/html"):
        # A web page (a proxy's, a portal's) where the API should be; its lines are no JSON.
        host = f"{response.url.scheme}://{response.url.netloc.decode()}"
        raise not_an_event_stream(f"Ollama at {host}", content_type)


def _ollama_error(reply: httpx.Response) -> bool:
    """Whether an error reply is Ollama's own: a JSON object with an `error` (its router's
    404 for an unknown path is plain text, as is llama-server's, vLLM's is JSON `detail`)."""
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body


def _error_text(reply: httpx.Response) -> str:
    try:
        return error_body_text(reply.json())
    except ValueError:
        return reply.text


async def _close(parts: Any) -> None:
    closer = getattr(parts, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()
