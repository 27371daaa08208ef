"""The answer kept as parts: O(1) appends, a cached join, and only the new text per frame."""

from __future__ import annotations

import threading

from workbench.engine.result import TargetResult


def _result(**kwargs: object) -> TargetResult:
    return TargetResult(target="t", name="t", provider="p", model="m", is_local=True, **kwargs)  # type: ignore[arg-type]


def test_parts_join_into_the_text_and_the_frame_takes_only_what_is_new() -> None:
    result = _result()
    assert result.text == "" and result.text_since(0) == ("", 0)
    for piece in ("Hel", "lo", ", ", "world"):
        result.add_text(piece)
    assert result.text == "Hello, world"
    new, count = result.text_since(2)
    assert (new, count) == (", world", 4)
    result.add_text("!")
    assert result.text_since(count) == ("!", 5)
    assert result.text == "Hello, world!"  # the cache grows with later parts


def test_text_can_still_be_set_and_given_to_the_constructor() -> None:
    assert _result(text="given").text == "given"
    result = _result()
    result.add_text("old")
    result.text = "replaced"
    assert result.text == "replaced" and result.text_since(0) == ("replaced", 1)
    result.add_text(" more")
    assert result.text == "replaced more"


def test_a_reader_never_sees_text_and_count_out_of_step_while_a_writer_appends() -> None:
    result = _result()
    pieces = [f"{i};" for i in range(20_000)]
    whole = "".join(pieces)
    done = threading.Event()

    def write() -> None:
        for piece in pieces:
            result.add_text(piece)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    shown, count = "", 0
    while not done.is_set() or count < len(pieces):
        new, count = result.text_since(count)
        shown += new
        assert whole.startswith(result.text)
    writer.join()
    assert shown == whole == result.text
