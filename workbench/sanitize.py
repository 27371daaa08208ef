"""Model output, model names and server messages are untrusted: make them inert text.

Strips terminal escape sequences (CSI, OSC, DCS, ...), C0/C1 control characters other than
newline and tab, and Unicode BiDi overrides that can disguise text. Rich markup needs no
stripping here: front ends print this text with markup turned off.
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]                 # CSI ... final byte
  | \x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?  # OSC, DCS, SOS, PM, APC ... BEL or ST
  | \x1b[ -/]*[0-~]                         # other two-byte escapes
  | \x9b[0-?]*[ -/]*[@-~]                   # 8-bit CSI
  | [\x90\x9d\x98\x9e\x9f][^\x07\x9c]*(?:\x07|\x9c)?  # 8-bit string controls
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean(text: str) -> str:
    """The text with escapes and control characters removed; newlines and tabs kept."""
    text = text.replace("\r\n", "\n")
    text = _ESCAPES.sub("", text)
    return _CONTROLS.sub("", text.replace("\r", ""))


def clean_line(text: str) -> str:
    """For one-line places (names, status, errors): newlines become spaces too."""
    return " ".join(clean(text).split())
