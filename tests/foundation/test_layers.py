"""The shared kernel and the composition root, kept apart (docs/architecture.md "Layers").

- The composition root is the short list :data:`ROOT` below: it wires the domains together and
  may import any of them.
- Every other ``callcenter`` module is kernel: it imports no domain package and no root module,
  not even inside a function.
- The domain packages (:data:`DOMAINS`) import the kernel, never the root.

``config`` (typed settings and the declarative files) sits under the kernel and imports neither.
The graph is the one the cycle test reads, function-level imports included.
"""

from __future__ import annotations

from tests.foundation.test_import_cycles import import_graph, project_modules

ROOT = frozenset(
    {
        "callcenter.app",  # the HTTP app: kernel routes + every domain's router
        "callcenter.cli",  # the `callcenter` command
        "callcenter.processes",  # `callcenter up`: runs and supervises every process
        "callcenter.worker",  # the RQ worker process
        "callcenter.systemd",  # `callcenter systemd-units`: a unit per process `up` runs
        "callcenter.schema",  # every domain's tables in one metadata (migrations, tests)
        "callcenter.demo",  # `callcenter demo`: a populated center to try
    }
)
DOMAINS = ("admin", "cti", "ivr", "metrics", "pages", "recordings", "ticketing")


def layer_of(module: str) -> str:
    top = module.split(".")[0]
    if module in ROOT:
        return "root"
    if top in ("callcenter", "config"):
        return "kernel"
    if top in DOMAINS:
        return "domain"
    raise AssertionError(f"{module}: in no layer")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that crosses the layers the wrong way: kernel -> domain or root,
    domain -> root."""
    found = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        for target in sorted(targets):
            wrong = (layer == "kernel" and layer_of(target) in ("domain", "root")) or (
                layer == "domain" and layer_of(target) == "root"
            )
            if wrong:
                found.append(f"{module} ({layer}) -> {target} ({layer_of(target)})")
    return found


def test_the_layer_check_finds_each_kind_of_wrong_import() -> None:
    graph = {
        "callcenter.errors": {"cti.models"},  # kernel -> domain
        "callcenter.db": {"callcenter.cli"},  # kernel -> root
        "ticketing.sla": {"callcenter.worker", "callcenter.errors"},  # domain -> root
        "callcenter.cli": {"cti.models", "callcenter.db"},  # root -> anything: fine
        "cti.models": {"callcenter.db", "ticketing.sla"},  # domain -> kernel, domain: fine
    }
    assert violations(graph) == [
        "callcenter.db (kernel) -> callcenter.cli (root)",
        "callcenter.errors (kernel) -> cti.models (domain)",
        "ticketing.sla (domain) -> callcenter.worker (root)",
    ]


def test_every_root_module_exists() -> None:
    assert set(project_modules()) >= ROOT


def test_every_module_is_in_a_layer() -> None:
    for module in project_modules():
        layer_of(module)


def test_kernel_imports_no_domain_and_domains_import_no_root() -> None:
    found = violations(import_graph(function_level=True))
    assert found == [], "imports across the layers:\n" + "\n".join(found)
