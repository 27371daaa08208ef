"""Turning HTTP statuses and transport failures into `ProviderError`s a person can act on.

Shared by the HTTP providers so each SDK adapter only has to say which exception is which.
"""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from providers.base import ErrorKind, ProviderError


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from, nearest first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


PLAIN_HTTP_HINT = " — if the server speaks plain HTTP, use http://"
"""For an https URL whose connection fails in or times out during the TLS handshake: a
plain-HTTP server answers a ClientHello with an HTTP error (WRONG_VERSION_NUMBER) or, as
llama-server does, waits in silence for a request line that never comes."""


def transport_error(
    exc: BaseException,
    where: str,
    *,
    hint: str = "",
    mid_stream: bool = False,
    https: bool = False,
) -> ProviderError:
    """A failure below HTTP: no route, refused, reset, TLS, or a timeout.

    `mid_stream` says the answer had begun, so a reset or an early close cut it short;
    `https` that the URL asks for TLS, so a connection that never completes may be TLS
    spoken to a plain-HTTP server.
    """
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return ProviderError(
                "offline",
                f"cannot resolve the host of {where} — check the address; no internet?"
                " local targets still work",
            )
        if isinstance(cause, ConnectionRefusedError):
            return ProviderError(
                "connection", f"connection refused by {where}{hint or ' — is the server running?'}"
            )
        if isinstance(cause, ssl.SSLError):
            fix = (
                " — the server's certificate is not trusted: add its authority to this"
                " machine's trust store"
                if isinstance(cause, ssl.SSLCertVerificationError)
                else PLAIN_HTTP_HINT
            )
            return ProviderError("connection", f"TLS handshake with {where} failed: {cause}{fix}")
        if isinstance(cause, TimeoutError | socket.timeout) or "Timeout" in type(cause).__name__:
            return ProviderError("timeout", _timeout_message(cause, where, https=https))
        if isinstance(cause, OSError) and cause.errno is not None and not mid_stream:
            return ProviderError("connection", f"cannot reach {where}: {cause.strerror}{hint}")
    if mid_stream:
        return cut_short(where, _detail(exc))
    return ProviderError("connection", f"connection to {where} failed: {_detail(exc)}{hint}")


def cut_short(where: str, detail: str = "") -> ProviderError:
    """The stream ended, cleanly or not, before the server said the answer was complete."""
    said = f": {detail}" if detail else ""
    return ProviderError(
        "connection",
        f"{where} closed the stream before the answer was finished{said}"
        " — the text so far is incomplete; try again",
    )


def _detail(exc: BaseException) -> str:
    """The most specific words in the chain: SDK wrappers say only "Connection error."."""
    said = [str(c) for c in causes(exc) if str(c)]
    return said[-1] if said else type(exc).__name__


def _timeout_message(exc: BaseException, where: str, *, https: bool = False) -> str:
    name = type(exc).__name__
    if "Connect" in name or "Pool" in name:
        # Connecting includes the TLS handshake.
        return f"{where} did not accept a connection in time{PLAIN_HTTP_HINT if https else ''}"
    return (
        f"{where} stopped sending (read timeout) — the server may be stuck or overloaded;"
        " if the model is only slow to answer, raise read_timeout_s in the config"
    )


NOT_FOUND_HINT = " — check the model name (`workbench models` lists them) and the base URL"
"""For a 404 from an API whose models are not fetched by name (OpenAI, Anthropic)."""


def failed_mid_answer(kind: ErrorKind, target: str, detail: str) -> ProviderError:
    """An error the server reported inside a stream that had already answered 200."""
    return ProviderError(
        kind, f"{target} failed mid-answer: {detail} — the text so far is incomplete; try again"
    )


def unreadable(where: str, what: str, exc: BaseException) -> ProviderError:
    """A chunk of the stream that does not parse: the answer cannot go on from there."""
    return ProviderError(
        "protocol",
        f"{where} sent {what} we cannot read: {exc} — the server, or a proxy in between, broke"
        " the stream; try again, and check the base URL if it persists",
    )


class Malformed(ValueError):
    """A chunk that is valid JSON but not shaped as the API documents it."""


_JSON_TYPES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}

MAX_TOKEN_COUNT = 10**9
"""The largest token count taken from a server: a hundred times the longest window any model
offers (10 M tokens), so no real request reaches it, while a count past it (a broken or
hostile server) would overflow the history's 64-bit integers and price an answer in
astronomical dollars."""

_V = TypeVar("_V", dict[str, Any], list[Any], str, int)


def json_object(value: object, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object, else the chunk is `Malformed` (`what` names it)."""
    if isinstance(value, dict):
        return value
    raise Malformed(f"{what} is {_JSON_TYPES.get(type(value), 'not JSON')}, not an object")


def json_field(obj: dict[str, Any], key: str, kind: type[_V]) -> _V | None:
    """`obj[key]` if it is a `kind`, None if null or absent; any other value is `Malformed`.

    The SDKs hand stream chunks over as decoded JSON, so every field is checked here
    rather than trusted: a wrong type must become a `protocol` error, not an AttributeError.
    """
    value = obj.get(key)
    # bool is an int to Python, never a count to JSON.
    if type(value) is kind or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    if value is None:
        return None
    if kind is int and isinstance(value, float):
        # Both are numbers to JSON: the value says what is wrong with it.
        raise Malformed(f"`{key}` is {_short(value)}, not a whole number")
    expected = "a whole number" if kind is int else _JSON_TYPES[kind]
    raise Malformed(f"`{key}` is {_JSON_TYPES.get(type(value), 'not JSON')}, not {expected}")


def token_count(obj: dict[str, Any], key: str) -> int | None:
    """A token count from a server's usage: None if absent; anything but a whole number from
    0 to `MAX_TOKEN_COUNT` is `Malformed`."""
    count = json_field(obj, key, int)
    if count is not None and not 0 <= count <= MAX_TOKEN_COUNT:
        raise Malformed(
            f"`{key}` is {_short(count)}, not a token count (a whole number from 0 to"
            f" {MAX_TOKEN_COUNT:,})"
        )
    return count


def _short(number: float) -> str:
    """A number a server sent, in a few characters however many digits it has."""
    text = str(number)
    return text if len(text) <= 20 else f"a {len(text.lstrip('-'))}-digit number"


def not_an_event_stream(where: str, content_type: str | None) -> ProviderError:
    """A 200 whose body is no stream of this API at all: a web page, a proxy, a wrong path."""
    said = content_type or "no content type"
    return ProviderError(
        "protocol",
        f"{where} answered with {said}, not this API's stream — check the base URL",
    )


_CONTEXT_TOO_LONG = re.compile(
    r"context (length|size|window)|too long|too many tokens|maximum.{0,40}tokens", re.IGNORECASE
)


def status_error(
    status: int,
    detail: str,
    *,
    target: str,
    headers: Mapping[str, str] | None = None,
    key_env: str | None = None,
    not_found_hint: str = "",
) -> ProviderError:
    """An HTTP error status, with the server's own words in `detail`."""
    detail = detail.strip()
    said = f": {detail}" if detail else ""
    kind: ErrorKind
    retry_after = None
    if status in (401, 403):
        kind = "auth"
        fix = f" — check {key_env}" if key_env else ""
        verb = "rejected the API key" if status == 401 else "refused access"
        message = f"{target} {verb} (HTTP {status}){said}{fix}"
    elif status == 404:
        kind = "not_found"
        message = f"{target}: not found (HTTP 404){said}{not_found_hint}"
    elif status == 429:
        kind = "rate_limited"
        retry_after = retry_after_s(headers)
        when = f"retry in {retry_after:.0f} s" if retry_after is not None else "retry later"
        message = f"{target}: rate limited, {when}{said}"
    elif status in (503, 529):
        kind = "overloaded"
        retry_after = retry_after_s(headers)
        message = f"{target}: the server is overloaded (HTTP {status}), try again shortly{said}"
    elif status in (400, 413, 422):
        kind = "bad_request"
        message = f"{target} refused the request (HTTP {status}){said}"
        if _CONTEXT_TOO_LONG.search(detail):
            message += (
                " — context too long for this model: start a new conversation, or summarize"
                " earlier turns"
            )
        elif status == 413:
            message += " — the request is too large: shorten the prompt or the conversation"
    elif status >= 500:
        kind = "server"
        message = (
            f"{target}: server error (HTTP {status}){said} — try again; if it persists, the"
            " server's log says why"
        )
    else:
        kind = "protocol"
        message = f"{target}: unexpected HTTP {status}{said}"
    return ProviderError(kind, message, retry_after=retry_after)


def shown_url(url: str) -> str:
    """The URL as it may be shown, stored or logged: a password in it (`user:pass@host`)
    replaced by `***`, the user name kept so the person sees which account it is."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_secrets(url: str | None) -> list[str]:
    """The password written into a URL, as it stands there and decoded, so that a message
    an SDK wrote quoting either form can be redacted."""
    try:
        password = urlsplit(url or "").password
    except ValueError:
        return []
    return list(dict.fromkeys((password, unquote(password)))) if password else []


def redact(text: str, secrets: list[str]) -> str:
    """The text with every secret replaced, since SDK errors can echo request headers.

    A server that masks the key it rejects still shows its start (`sk-proj-abcd****wxyz`):
    the first 12 characters of a longer key go too.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
            if len(secret) > 12:
                text = text.replace(secret[:12], "[redacted]")
    return text


def error_body_text(body: object) -> str:
    """The human part of an error body, whatever shape the server chose."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            return str(message) if message else str(dict(inner))
        return str(inner)
    return "" if body is None else str(body)


_T = TypeVar("_T")


def stale_connection(exc: BaseException) -> bool:
    """A pooled keep-alive connection the server had already closed: nothing was sent."""
    return any(
        type(c).__name__ == "RemoteProtocolError" and "without sending a response" in str(c)
        for c in causes(exc)
    )


async def send(call: Callable[[], Awaitable[_T]]) -> _T:
    """Make the request, once more if it only met a stale pooled connection.

    The SDKs run with retries off so rate limits and errors reach the user unhidden; this
    is the one failure that says nothing about the server and is always safe to repeat.
    """
    try:
        return await call()
    except Exception as exc:
        if not stale_connection(exc):
            raise
    return await call()
