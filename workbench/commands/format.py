"""Figures as people read them: seconds, rates, token counts, bytes; errors on a line
that already names their target."""

from __future__ import annotations

import os
from typing import IO, TextIO

from rich.cells import cell_len
from rich.console import Console

from providers.registry import split_settings
from workbench.engine.result import TargetResult
from workbench.sanitize import clean_line


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.2f}s"


def rate(value: float | None, exact: bool = True) -> str:
    """A figure per token (tok/s, TPOT) is as estimated as the count it was worked out from."""
    return "–" if value is None else f"{'' if exact else '~'}{value:.1f}"


def tokens(count: int, exact: bool) -> str:
    return f"{count}" if exact else f"~{count}"


def size(n: int | None) -> str:
    if n is None:
        return "–"
    step = 1024.0
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < step or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= step
    return f"{n} B"


def count(n: int | None) -> str:
    """Context sizes the way model cards write them: 8k, 128k, 200k."""
    if n is None:
        return "–"
    for unit in (1024, 1000):
        if n >= unit and n % unit == 0:
            return f"{n // unit}k"
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n:,}"


def count_short(n: int) -> str:
    """Token counts in a tight space: 950, 1.2k, 8k, 128k, 1.2M."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    if n < 999_500:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M".replace(".0M", "M")


def console_width(out: object) -> int | None:
    """Let a table use the terminal's width, or a wide page when written to a pipe or file."""
    isatty = getattr(out, "isatty", None)
    return None if isatty is not None and isatty() else 160


def cost(result: TargetResult) -> str:
    return result.cost.label if result.cost else "–"


def discard(out: IO[str]) -> None:
    """The reader of `out` went away (`workbench … | head`): what is still written to it,
    and what Python flushes at exit, goes to /dev/null instead of failing on every write.

    The usual fix (Python's docs, "Note on SIGPIPE"), without exiting: the command goes on.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file: nothing left to fail
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich's own exits with status 1, from wherever it is printing: in `ask`, before
        # the last answers are stored. Stop printing instead; the command decides the rest.
        self.quiet = True
        discard(self.file)


def console(out: TextIO) -> Console:
    """A Rich console that prints model text as text: no markup, no highlighting, no emoji.
    If the reader goes away, it stops printing quietly (`discard`)."""
    return _Console(
        file=out,
        width=console_width(out),
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )


def error_text(result: TargetResult) -> str:
    """The result's error on one clean line, on a line that names its target already."""
    return clean_line(result.error_here)


def fit_target(name: str, width: int) -> str:
    """A target's name (`provider:model@key=value,…`) in at most `width` cells, never with a
    setting's value cut short, which would change its meaning (`max_tokens=12…` of 128):
    whole settings are dropped from the end, and `…` says so
    (`embedded:smollm2@temperature=0,…`). Only when even `provider:model` does not fit is
    the model name cut (`openai:gpt-4o-m…@…`)."""
    if cell_len(name) <= width:
        return name
    head, settings = split_settings(name)
    for keep in range(len(settings) - 1, 0, -1):
        shown = f"{head}@{','.join(settings[:keep])},…"
        if cell_len(shown) <= width:
            return shown
    more = "@…" if settings else ""
    if cell_len(head + more) <= width:
        return head + more
    provider, colon, _ = head.partition(":")
    room = width - cell_len(provider + colon + "…" + more)
    if colon and room >= 1:
        return provider + colon + _cut(head[len(provider) + 1 :], room) + "…" + more
    return _cut(name, width - 1) + "…" if width >= 1 else ""


def _cut(text: str, width: int) -> str:
    """The longest start of `text` that takes at most `width` cells."""
    used = 0
    for index, char in enumerate(text):
        used += cell_len(char)
        if used > width:
            return text[:index]
    return text


def plural(count: int, noun: str) -> str:
    """`1 turn`, `2 turns`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def distinct_targets(names: list[str], width: int) -> dict[str, str]:
    """Each name in `width` cells; where two come out alike (`embedded:smollm2@…` for two
    settings of one model), what tells them apart stands in their place: the model with its
    settings, else the settings they do not share (`@max_tokens=30`)."""
    shown = {name: fit_target(name, width) for name in names}
    taken = list(shown.values())
    for name in [n for n in names if taken.count(shown[n]) > 1]:
        shown[name] = fit_target(name.partition(":")[2] or name, width)
    taken = list(shown.values())
    clashing = [n for n in names if taken.count(shown[n]) > 1]
    if clashing:
        shared = set.intersection(*(set(split_settings(n)[1]) for n in clashing))
        for name in clashing:
            if own := [s for s in split_settings(name)[1] if s not in shared]:
                shown[name] = fit_target("@" + ",".join(own), width)
    taken = list(shown.values())
    for name in [n for n in names if taken.count(shown[n]) > 1]:
        # Models named alike to past the width (`llama3.2:1b-instruct-q4_K_M` and `-q8_0`)
        # differ at the end: that is kept, their common start cut.
        model = name.partition(":")[2] or name
        if cell_len(model) > width > 1:
            shown[name] = "…" + _last_cells(model, width - 1)
    return shown


def _last_cells(text: str, cells: int) -> str:
    """The end of `text` that fits in `cells`."""
    end = len(text)
    while end > 0 and cell_len(text[end - 1 :]) <= cells:
        end -= 1
    return text[end:]
