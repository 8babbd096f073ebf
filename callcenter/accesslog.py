"""uvicorn's logging without query strings.

Browsers may only pass credentials in a URL (EventSource cannot set headers; tokens in
``?token=``), and uvicorn logs each request's path *with* its query, in the access log and in
its WebSocket lines. Log files travel further than the API (support tickets, log shippers), so
the query is cut from every path uvicorn logs: the path alone says what was asked.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG


def _without_query(value: object) -> object:
    if isinstance(value, str) and value.startswith("/") and "?" in value:
        return value.split("?", 1)[0]
    return value


class DropQueryStrings(logging.Filter):
    """Cuts ``?…`` from every path-like argument of a record (uvicorn passes the request path
    as a ``%s`` argument; its formatters read ``record.args``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, every handler filtered by ``DropQueryStrings``."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"drop_query_strings": {"()": DropQueryStrings}}
    for handler in config["handlers"].values():
        handler["filters"] = ["drop_query_strings"]
    return config
