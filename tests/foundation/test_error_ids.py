"""Error ids: each package declares its own in one place (an ``ErrorCatalog`` in its
``errors.py``); every id is unique, every one a raise site names is declared, and
docs/errors.md lists exactly the ids there are (domain and generic)."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from callcenter.errors import ErrorCatalog
from tests.foundation.test_import_cycles import PACKAGES, ROOT, project_modules

DOCS = ROOT / "docs" / "errors.md"


def catalogs() -> dict[str, list[ErrorCatalog]]:
    """Module name -> the catalogs it declares, for every package's ``errors.py``."""
    found: dict[str, list[ErrorCatalog]] = {}
    for package in PACKAGES:
        if (ROOT / package / "errors.py").exists():
            module = importlib.import_module(f"{package}.errors")
            found[module.__name__] = [
                v for v in vars(module).values() if isinstance(v, ErrorCatalog)
            ]
    return found


def declared() -> dict[str, str]:
    ids: dict[str, str] = {}
    for found in catalogs().values():
        for catalog in found:
            for full, meaning in catalog.all().items():
                assert full not in ids, f"{full} declared twice"
                ids[full] = meaning
    return ids


def generic_ids() -> set[str]:
    """The kinds errors without a domain id keep: class-level ``error_id = "..."`` and the
    literal ids of the app's own handlers."""
    found: set[str] = set()
    for path in project_modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "error_id" for t in node.targets)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.add(node.value.value)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "error_body"
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "error_id"
                        and isinstance(value, ast.Constant)
                    ):
                        found.add(str(value.value))
    from callcenter.app import FRAMEWORK_ERROR_IDS

    return found | set(FRAMEWORK_ERROR_IDS.values())


def test_every_domain_is_declared_once_and_ids_are_domain_kebab_case() -> None:
    domains = [c.domain for found in catalogs().values() for c in found]
    assert len(domains) == len(set(domains)), domains
    assert {"agents", "calls", "tickets", "recordings", "metrics"} <= set(domains)
    ids = declared()
    assert all(re.fullmatch(r"[a-z]+\.[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)
    assert all(meaning.strip() for meaning in ids.values())
    assert not set(ids) & generic_ids()


def test_a_catalog_refuses_an_id_it_does_not_declare() -> None:
    catalog = ErrorCatalog("things", {"not-found": "no such thing"})
    assert catalog.id("not-found") == "things.not-found"
    with pytest.raises(KeyError, match=r"things\.gone"):
        catalog.id("gone")
    with pytest.raises(ValueError, match="kebab"):
        ErrorCatalog("things", {"Not_Found": "bad"})


def test_every_error_id_a_raise_site_names_is_a_declared_one() -> None:
    ids = declared()
    constants = {
        name: value
        for module in catalogs()
        for name, value in vars(importlib.import_module(module)).items()
        if isinstance(value, str) and value in ids
    }
    used = 0
    for module, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "error_id":
                used += 1
                assert isinstance(node.value, ast.Name), f"{module}: error_id= takes a constant"
                assert node.value.id in constants, f"{module}: {node.value.id} is not declared"
    assert used > 100  # cti, ticketing, recordings, metrics name their errors


def test_docs_list_exactly_the_ids() -> None:
    text = DOCS.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", text, re.M))
    assert listed == set(declared()) | generic_ids()
