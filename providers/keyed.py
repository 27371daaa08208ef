"""What the OpenAI and Anthropic adapters share: a base URL, a key from a named variable,
timeouts, and a model list from the server or the config."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from providers.base import UNREACHABLE, ModelInfo, ProviderError, ResourceUsage
from providers.errors import shown_url, transport_error, url_secrets
from providers.registry import is_loopback_url

if TYPE_CHECKING:
    import psutil

LISTENER_RECHECK_S = 60.0
"""How long a server process found on a port is taken to be still the one listening there."""
_FORWARDERS = frozenset(
    {"ssh", "docker-proxy", "rootlessport", "gvproxy", "com.docker.backend", "kubectl", "socat"}
)
"""Processes that listen on a loopback port for a server elsewhere (a tunnel, a container):
their memory is not the model's, so a port they hold gets no figure."""


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
        self._listeners: dict[int, tuple[psutil.Process, float]] = {}
        """The server process found listening on each port, and when it was last seen to
        (`time.monotonic()`): later figures skip the search."""

    @property
    def _where(self) -> str:
        return f"{self.name} at {shown_url(self.base_url or self.default_url)}"

    @property
    def _https(self) -> bool:
        return (self.base_url or self.default_url).lower().startswith("https://")

    @property
    def _secrets(self) -> list[str]:
        # A password in the base URL too: an SDK's message may quote the URL it was given.
        return [*([self._api_key] if self._api_key else []), *url_secrets(self.base_url)]

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
        error = transport_error(exc.__cause__ or exc, self._where, https=self._https)
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
        """The server's models, or the config's where it names them. The server is asked
        either way: a list written in the config says nothing of whether anything listens,
        and the server may know each model's window."""
        if not self._configured_models:
            return await self._listed()
        try:
            listed = {m.id: m.context_length for m in await self._listed()}
        except ProviderError as exc:
            if exc.kind in UNREACHABLE:
                raise
            listed = {}  # it answered, if not with a list (no /v1/models, a proxy): it is there
        return [
            ModelInfo(i, listed.get(i), is_local=self.is_local) for i in self._configured_models
        ]

    async def resources(self, model: str | None = None) -> ResourceUsage | None:
        """The memory of the server process on this machine, when the base URL is loopback
        (llama-server, LM Studio, vLLM); a remote server's is not ours to see. `model` is not
        told apart: the process holds whatever it has loaded."""
        url = self.base_url or self.default_url
        if not is_loopback_url(url):
            return None
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        # Reading /proc (or asking the kernel for every socket) blocks: not on the loop that
        # timestamps the other panes' streams.
        return await asyncio.to_thread(self._server_memory, port)

    def _server_memory(self, port: int) -> ResourceUsage | None:
        import psutil

        process, seen = self._listeners.get(port, (None, 0.0))
        now = time.monotonic()
        try:
            # Whether it still listens takes reading the system's socket tables (~7 ms of
            # Python, the GIL held, as the last tokens of other panes are drawn): checked
            # now and then. A process that ended is noticed at once (psutil compares its
            # start time), which is what a restarted server is.
            fresh = process is not None and process.is_running()
            if fresh and now - seen > LISTENER_RECHECK_S:
                fresh = process is not None and _listens(process, port)
                seen = now
            if not fresh or process is None:
                process, seen = _find_listener(port), now
                if process is None:
                    self._listeners.pop(port, None)
                    return None
            self._listeners[port] = (process, seen)
            name = process.name()
            if name in _FORWARDERS:
                return None
            # Servers that run models in worker processes (vLLM's engine core, LM Studio's,
            # Ollama's runners) hold them in the children, not in the listener.
            children = process.children(recursive=True)
            rss = process.memory_info().rss
            for child in children:
                try:
                    rss += child.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._listeners.pop(port, None)
            return None
        with_children = f" with {len(children)} child processes" if children else ""
        return ResourceUsage(rss, detail=f"{name} RSS (pid {process.pid}){with_children}")


def _listens(process: psutil.Process, port: int) -> bool:
    """Whether the process (the same one: psutil checks its start time) still listens on
    `port`: its own sockets, not every process's, as a search reads."""
    if not process.is_running():
        return False
    return any(_is_listener(c, port) for c in process.net_connections(kind="tcp"))


def _find_listener(port: int) -> psutil.Process | None:
    """The process listening on `port` on loopback; None if there is none or the OS will not
    say whose it is (another user's, without privileges)."""
    import psutil

    try:
        # One table for the whole system is cheaper than asking every process for its own…
        owners = {c.pid for c in psutil.net_connections(kind="tcp") if _is_listener(c, port)}
    except psutil.AccessDenied:
        # …but macOS gives it only to root: then each of the processes we may look into.
        for process in psutil.process_iter():
            try:
                if any(_is_listener(c, port) for c in process.net_connections(kind="tcp")):
                    return process
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return None
    try:
        processes = [psutil.Process(pid) for pid in owners if pid is not None]
        # A pre-forking server's workers share its listening socket: the parent is the server.
        roots = [p for p in processes if p.ppid() not in owners]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return roots[0] if len(roots) == 1 else None


def _is_listener(connection: Any, port: int) -> bool:
    """A listening socket on `port` that a loopback client reaches: bound to loopback or to
    every address."""
    import psutil

    if connection.status != psutil.CONN_LISTEN or not connection.laddr:
        return False
    if connection.laddr.port != port:
        return False
    try:
        address = ipaddress.ip_address(connection.laddr.ip.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


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
