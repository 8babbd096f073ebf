"""Erlang C (M/M/N) and Erlang A (M/M/N+M: callers abandon after an exponential patience).

Rates are per second. ``offered_load`` A = λ / μ in Erlangs. Erlang C has no abandonment, so
its answer rate is 1 once N > A; Erlang A gives the share of callers who give up, which is what
the 90 % answer-rate target is about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 2000


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability, by the stable recursion B(0)=1, B(n)=A·B(n-1)/(n + A·B(n-1))."""
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def erlang_c(agents: int, load: float) -> float:
    """Probability that a caller waits (0 < load < agents); 1.0 when the queue is unstable."""
    if agents <= 0 or load >= agents:
        return 1.0
    if load <= 0:
        return 0.0
    blocking = erlang_b(agents, load)
    return agents * blocking / (agents - load * (1 - blocking))


def erlang_c_service_level(agents: int, load: float, aht: float, target_seconds: float) -> float:
    """Share of callers answered within ``target_seconds``: 1 − C·e^(−(N−A)·T/AHT)."""
    if agents <= load:
        return 0.0
    return 1.0 - erlang_c(agents, load) * math.exp(-(agents - load) * target_seconds / aht)


def erlang_c_asa(agents: int, load: float, aht: float) -> float:
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * aht / (agents - load)


@dataclass(frozen=True)
class ErlangA:
    p_wait: float  # share of callers who find every agent busy
    p_abandon: float  # share of callers who give up before being answered
    service_level: float  # share of callers answered within the target
    answer_rate: float  # 1 − p_abandon


def _stationary(
    arrival: float, service: float, patience_rate: float, agents: int
) -> tuple[list[float], int]:
    """Birth-death stationary distribution of the number in system, truncated where the tail
    is negligible. Built in log space so large loads do not overflow."""
    logs = [0.0]
    n = 0
    while True:
        n += 1
        death = min(n, agents) * service + max(n - agents, 0) * patience_rate
        if death <= 0:
            raise ValueError("with no patience (θ=0) and load ≥ agents the queue never settles")
        logs.append(logs[-1] + math.log(arrival) - math.log(death))
        if n > agents and logs[-1] < max(logs) - 40 and n > agents + 5:
            break
        if n > agents + 100_000:
            break
    peak = max(logs)
    weights = [math.exp(v - peak) for v in logs]
    total = sum(weights)
    return [w / total for w in weights], n


def erlang_a(
    arrival_rate: float,
    aht: float,
    patience: float,
    agents: int,
    target_seconds: float,
) -> ErlangA:
    """Erlang A figures. ``patience`` is the mean time a caller is willing to wait (s).

    The service level follows a tagged caller who arrives to find ``k`` callers ahead: it moves
    up at rate N·μ + k·θ (a service ends or someone ahead gives up), abandons at rate θ, and is
    answered when it is at the head and an agent frees up. Solved by uniformization.
    """
    if agents <= 0:
        return ErlangA(1.0, 1.0, 0.0, 0.0)
    service = 1.0 / aht
    theta = 1.0 / patience if patience > 0 else 0.0
    pi, _top = _stationary(arrival_rate, service, theta, agents)
    p_wait = sum(pi[agents:])
    p_abandon = sum(pi[n] * (n - agents) * theta for n in range(agents + 1, len(pi))) / arrival_rate
    # Tagged caller: arrival sees n (PASTA); with n ≥ N it has k = n − N callers ahead.
    ahead = [pi[agents + k] for k in range(len(pi) - agents)]
    rates_up = [agents * service + k * theta for k in range(len(ahead))]
    uniform = max(rates_up) + theta
    served = 0.0
    vector = ahead[:]
    steps_mean = uniform * target_seconds
    max_steps = int(steps_mean + 12 * math.sqrt(steps_mean + 1) + 20)
    log_poisson = -steps_mean
    served_by_step = [0.0]
    for _ in range(max_steps):
        nxt = [0.0] * len(vector)
        absorbed = 0.0
        for k, mass in enumerate(vector):
            if mass == 0.0:
                continue
            up = rates_up[k] / uniform
            stay = 1.0 - up - theta / uniform
            if k == 0:
                absorbed += mass * up
            else:
                nxt[k - 1] += mass * up
            nxt[k] += mass * stay
        served += absorbed
        served_by_step.append(served)
        vector = nxt
    # P(served by T) = Σ_j Poisson(j; ΛT) · served_by_step[j]
    within = 0.0
    for j, value in enumerate(served_by_step):
        if j > 0:
            log_poisson += math.log(steps_mean) - math.log(j) if steps_mean > 0 else -math.inf
        if steps_mean == 0 and j > 0:
            break
        within += math.exp(log_poisson) * value
    tail = served_by_step[-1] * max(0.0, 1.0 - sum_poisson(steps_mean, len(served_by_step) - 1))
    within += tail
    service_level = (1.0 - p_wait) + within
    return ErlangA(p_wait, p_abandon, min(service_level, 1.0), 1.0 - p_abandon)


def sum_poisson(mean: float, upto: int) -> float:
    if mean == 0:
        return 1.0
    log_term = -mean
    total = math.exp(log_term)
    for j in range(1, upto + 1):
        log_term += math.log(mean) - math.log(j)
        total += math.exp(log_term)
    return total


def agents_for_erlang_c(
    arrival_rate: float, aht: float, target_seconds: float, service_level: float
) -> int:
    """Fewest agents for an Erlang C service level (0 with no calls)."""
    if arrival_rate <= 0:
        return 0
    load = arrival_rate * aht
    agents = max(1, math.floor(load) + 1)
    while agents < MAX_AGENTS:
        if erlang_c_service_level(agents, load, aht, target_seconds) >= service_level:
            return agents
        agents += 1
    return MAX_AGENTS


def agents_for_erlang_a(
    arrival_rate: float,
    aht: float,
    patience: float,
    *,
    answer_rate: float | None = None,
    service_level: float | None = None,
    target_seconds: float = 20,
) -> int:
    """Fewest agents reaching the answer rate and/or the service level under Erlang A."""
    if arrival_rate <= 0:
        return 0
    agents = max(1, math.floor(arrival_rate * aht * 0.5))
    while agents < MAX_AGENTS:
        result = erlang_a(arrival_rate, aht, patience, agents, target_seconds)
        ok = (answer_rate is None or result.answer_rate >= answer_rate) and (
            service_level is None or result.service_level >= service_level
        )
        if ok:
            return agents
        agents += 1
    return MAX_AGENTS
