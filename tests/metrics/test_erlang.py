"""Erlang C and A against hand-checkable values and an independent birth-death computation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from metrics.erlang import (
    agents_for_erlang_a,
    agents_for_erlang_c,
    erlang_a,
    erlang_b,
    erlang_c,
    erlang_c_service_level,
)


def test_erlang_c_by_hand() -> None:
    # A = 2 Erlangs, N = 3: (A^3/3! · 3/(3-2)) / (1 + 2 + 2 + 4) = 4/9
    assert erlang_c(3, 2.0) == pytest.approx(float(Fraction(4, 9)))
    # Erlang B, A = 1, N = 1: 1/2; N = 2: 1/5 (table values)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c(2, 2.0) == 1.0  # unstable


def _chain_wait_probability(agents: int, load: float, states: int = 400) -> float:
    """Independent: stationary M/M/N distribution by detailed balance over a long chain."""
    weights = [1.0]
    for n in range(1, states):
        weights.append(weights[-1] * load / min(n, agents))
    return sum(weights[agents:]) / sum(weights)


@pytest.mark.parametrize(("agents", "load"), [(1, 0.5), (5, 3.0), (12, 10.0), (40, 35.5)])
def test_erlang_c_equals_the_birth_death_chain(agents: int, load: float) -> None:
    assert erlang_c(agents, load) == pytest.approx(_chain_wait_probability(agents, load), rel=1e-9)


def test_erlang_c_service_level_and_staffing() -> None:
    # 100 calls/h, AHT 180 s → 5 Erlangs; SL(7 agents, 20 s)
    load = 100 / 3600 * 180
    c = _chain_wait_probability(7, load)
    assert erlang_c_service_level(7, load, 180, 20) == pytest.approx(
        1 - c * math.exp(-(7 - load) * 20 / 180)
    )
    needed = agents_for_erlang_c(100 / 3600, 180, 20, 0.8)
    assert erlang_c_service_level(needed, load, 180, 20) >= 0.8
    assert erlang_c_service_level(needed - 1, load, 180, 20) < 0.8


def test_erlang_a_tends_to_erlang_c_when_callers_never_give_up() -> None:
    load, aht = 5.0, 180.0
    rate = load / aht
    result = erlang_a(rate, aht, patience=1e9, agents=7, target_seconds=20)
    assert result.p_wait == pytest.approx(erlang_c(7, load), rel=1e-6)
    assert result.service_level == pytest.approx(erlang_c_service_level(7, load, aht, 20), rel=1e-6)
    assert result.p_abandon == pytest.approx(0.0, abs=1e-6)


def test_erlang_a_abandonment_by_an_independent_chain() -> None:
    rate, aht, patience, agents = 0.05, 180.0, 60.0, 8  # 9 Erlangs on 8 agents: stable thanks to θ
    mu, theta = 1 / aht, 1 / patience
    weights = [1.0]
    for n in range(1, 600):
        weights.append(weights[-1] * rate / (min(n, agents) * mu + max(n - agents, 0) * theta))
    total = sum(weights)
    abandon = sum(w * max(n - agents, 0) * theta for n, w in enumerate(weights)) / total / rate
    result = erlang_a(rate, aht, patience, agents, 20)
    assert result.p_abandon == pytest.approx(abandon, rel=1e-9)
    assert 0 < result.service_level < 1 - result.p_abandon + 1e-12
    need = agents_for_erlang_a(rate, aht, patience, answer_rate=0.9)
    assert erlang_a(rate, aht, patience, need, 20).answer_rate >= 0.9
    assert erlang_a(rate, aht, patience, need - 1, 20).answer_rate < 0.9
