"""The metric definitions of DESIGN §4 on synthetic timestamps."""

from __future__ import annotations

import pytest

from workbench.engine.metrics import Timing, decode_tps, output_tps, tpot_s


def test_tpot_over_tokens_after_the_first() -> None:
    t = Timing(ttft_s=0.5, e2e_s=2.5, output_tokens=11)
    assert tpot_s(t) == pytest.approx(0.2)
    assert decode_tps(t) == pytest.approx(5.0)
    assert output_tps(t) == pytest.approx(11 / 2.5)


@pytest.mark.parametrize("tokens", [0, 1])
def test_no_inter_token_figures_without_a_second_token(tokens: int) -> None:
    t = Timing(ttft_s=0.3, e2e_s=0.3, output_tokens=tokens)
    assert tpot_s(t) is None
    assert decode_tps(t) is None


def test_one_token_still_has_an_output_rate() -> None:
    assert output_tps(Timing(ttft_s=0.25, e2e_s=0.5, output_tokens=1)) == pytest.approx(2.0)


def test_zero_tokens_have_no_output_rate() -> None:
    assert output_tps(Timing(ttft_s=None, e2e_s=1.0, output_tokens=0)) is None


def test_no_division_by_zero_when_everything_arrived_at_once() -> None:
    t = Timing(ttft_s=1.0, e2e_s=1.0, output_tokens=5)
    assert decode_tps(t) is None
    assert tpot_s(t) == 0.0
    assert output_tps(Timing(ttft_s=0.0, e2e_s=0.0, output_tokens=5)) is None


def test_unfinished_request_has_no_rates() -> None:
    t = Timing(ttft_s=0.2, e2e_s=None, output_tokens=7)
    assert tpot_s(t) is None
    assert output_tps(t) is None
    assert decode_tps(t) is None
