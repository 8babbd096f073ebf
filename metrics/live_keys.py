"""Where the live metric engine keeps its state in Redis: the key layout and its names.

Redis layout (all under ``{prefix}:metrics:``):

Redis layout (all under ``{prefix}:metrics:``):

==========================  ===========================================================
``applied:<stream>``        last stream id applied (replays at or below it are skipped)
``call:<call_id>``          a call's tracker state (JSON) until nothing more can change it
``agents``                  hash agent id → agent state (JSON)
``waiting:<queue>``         sorted set call id → epoch seconds it entered the queue
``total``                   hash ``q:<queue>|<shift>|<counter>`` since the beginning
``day:<YYYY-MM-DD>``        hash ``<dim>|<shift>|<counter>`` for a local day
``occ:<shift>:<date>``      same, for one occurrence of a shift
``min:<epoch minute>``      same, for one minute (rolling windows; expires after 2 hours)
``hist:<wait|handle>``      hash ``<queue>|<upper bound>`` counts, ``<queue>|sum``/``|count``
``version``                 incremented by every applied batch; ``changed`` is published
``alerts``                  hash ``<kind>|<queue>`` → a rate alert's hysteresis state
                            (kind ``answer_rate`` or ``service_level``)
==========================  ===========================================================

``<dim>`` is ``q:<queue>``, ``t:<team>``, or ``e:edge`` (calls refused at the edge, before any
queue: counted for the center).
"""

from __future__ import annotations

from callcenter.redis_keys import Keys

EDGE_DIM = "e:edge"  # calls refused at the edge (no queue): counted for the center
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
HANDLE_BUCKETS = (30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
BUCKETS = {"wait": WAIT_BUCKETS, "handle": HANDLE_BUCKETS}


class MetricKeys:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def __call__(self, name: str) -> str:
        return self.keys.metrics(name)

    def applied(self, stream: str) -> str:
        return self(f"applied:{stream}")

    def call(self, call_id: str) -> str:
        return self(f"call:{call_id}")

    def waiting(self, queue: str) -> str:
        return self(f"waiting:{queue}")

    def day(self, day: str) -> str:
        return self(f"day:{day}")

    def occ(self, occurrence: str) -> str:
        return self(f"occ:{occurrence}")

    def minute(self, epoch_minute: int) -> str:
        return self(f"min:{epoch_minute}")
