"""Run a sipvicious tool from one source address (run it with the system python3).

sipvicious 0.3.3 (Debian package) takes ``-b BINDINGIP`` for svwar and svcrack but never hands
it to its scanner classes, so they send from whatever address the kernel picks (127.0.0.1
towards a loopback target). This gives the classes the address, then runs the tool's own
``main()``: ``python3 sipvicious_bound.py 127.0.0.2 svcrack -u 1001 ... 127.0.0.1``.
"""

from __future__ import annotations

import sys
from typing import Any

# Debian installs the package here, outside sys.path (its /usr/bin scripts find it by metadata).
SIPVICIOUS_DIR = "/usr/share/sipvicious"


def main() -> int:
    address, tool, *args = sys.argv[1:]
    sys.path.insert(0, SIPVICIOUS_DIR)
    if tool == "svcrack":
        from sipvicious import svcrack as module

        scanner: Any = module.ASipOfRedWine
    elif tool == "svwar":
        from sipvicious import svwar as module

        scanner = module.TakeASip
    elif tool == "svmap":
        from sipvicious import svmap as module

        scanner = module.DrinkOrSip
    else:
        raise SystemExit(f"unknown sipvicious tool {tool!r}")
    original = scanner.__init__

    def bound_init(self: Any, *positional: Any, **named: Any) -> None:
        named["bindingip"] = address
        original(self, *positional, **named)

    scanner.__init__ = bound_init
    sys.argv = [tool, *args]
    return int(module.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
