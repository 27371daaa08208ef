"""Model output, model names and server messages are untrusted: make them inert text.

Strips terminal escape sequences (CSI, OSC, DCS, ...), C0/C1 control characters other than
newline and tab, and Unicode BiDi controls that can disguise text. Lone surrogates (JSON may
carry them) become U+FFFD, since they cannot be encoded for a terminal or SQLite. Rich
markup needs no stripping here: front ends print this text with markup turned off.

Every pattern is linear: the text may be a megabyte of hostile bytes, and a pattern that
rescans from each introducer would freeze the UI.
"""

from __future__ import annotations

import re

_STRING_MAX = 4096
"""The longest OSC/DCS payload removed whole; a longer or unterminated one loses only its
introducer, and its payload stays as plain text rather than swallowing the rest."""
_INTRODUCERS = "\x1b\x90\x98\x9d\x9e\x9f"

_ESCAPES = re.compile(
    rf"""
    \x1b\[[0-?]*[ -/]*[@-~]                            # CSI ... final byte
  | \x1b[\]PX^_][^\x07\x9c{_INTRODUCERS}]{{0,{_STRING_MAX}}}(?:\x07|\x9c|\x1b\\)
                                                     # OSC, DCS, SOS, PM, APC ... BEL or ST
  | \x1b[ -/]*[0-~]                                  # other escapes (and lone introducers)
  | \x9b[0-?]*[ -/]*[@-~]                            # 8-bit CSI
  | [\x90\x98\x9d\x9e\x9f][^\x07\x9c{_INTRODUCERS}]{{0,{_STRING_MAX}}}(?:\x07|\x9c)
                                                     # 8-bit string controls
    """,
    re.VERBOSE,
)
_UNFINISHED = re.compile(
    rf"""
    (?: \x1b (?: \[[0-?]*[ -/]*                          # CSI without its final byte
             | [\]PX^_][^\x07\x9c{_INTRODUCERS}]{{0,{_STRING_MAX}}}\x1b?
                                                      # a string not yet terminated
             | [ -/]* )                               # ESC, intermediates, nothing final
      | \x9b[0-?]*[ -/]*
      | [\x90\x98\x9d\x9e\x9f][^\x07\x9c{_INTRODUCERS}]{{0,{_STRING_MAX}}}
    ) \Z
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_SURROGATES = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """The text with lone surrogates as U+FFFD, so UTF-8 (SQLite, a terminal) can hold it."""
    return _SURROGATES.sub("\ufffd", text)


def clean(text: str) -> str:
    """The text with escapes and control characters removed; newlines and tabs kept."""
    text = encodable(text.replace("\r\n", "\n"))
    text = _ESCAPES.sub("", text)
    return _CONTROLS.sub("", text.replace("\r", ""))


def unfinished_escape(text: str) -> int:
    """Where an escape sequence that the next chunk may finish begins at the end of `text`
    (`len(text)` if none does). A stream shows text up to there and holds the rest back:
    cleaned alone, half a sequence would leave its tail (`[31m`) on screen."""
    window = max(0, len(text) - _STRING_MAX - 16)  # no sequence held back is longer
    found = _UNFINISHED.search(text, window)
    return found.start() if found else len(text)


def clean_line(text: str) -> str:
    """For one-line places (names, status, errors): newlines become spaces too."""
    return " ".join(clean(text).split())
