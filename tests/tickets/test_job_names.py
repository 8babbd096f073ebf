"""Jobs are enqueued by dotted name (nothing imports ``ticketing.jobs`` back): each name must
resolve to the job function, with the name RQ would have stored for the function itself."""

from __future__ import annotations

import importlib

from ticketing import jobs, scheduling, services


def test_every_enqueued_name_is_a_job_function_under_that_name() -> None:
    for dotted in scheduling.JOB_FUNCTIONS:
        module_name, _, name = dotted.rpartition(".")
        function = getattr(importlib.import_module(module_name), name)
        assert callable(function), dotted
        assert f"{function.__module__}.{function.__qualname__}" == dotted
    assert {jobs.check_sla, jobs.place_callback, jobs.deliver_webhook, jobs.scan} == {
        getattr(jobs, dotted.rpartition(".")[2]) for dotted in scheduling.JOB_FUNCTIONS
    }


def test_the_former_services_module_still_offers_every_name() -> None:
    for name in services.__all__:
        assert getattr(services, name) is not None, name
