"""One contract, two stores: the local disk and a real S3-compatible server (moto_server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recordings.storage import MissingObject, Storage, check_key, read_all


def _source(tmp_path: Path, size: int = 200_000) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / f"source-{size}.bin"
    path.write_bytes(data)
    return path, data


def test_put_then_read_whole_and_size(storage: Storage, tmp_path: Path) -> None:
    source, data = _source(tmp_path)
    storage.put("2026/12/06/a.wav", source)
    assert storage.exists("2026/12/06/a.wav")
    assert storage.size("2026/12/06/a.wav") == len(data)
    assert read_all(storage, "2026/12/06/a.wav") == data


@pytest.mark.parametrize(("start", "end"), [(0, 0), (1, 99), (65_530, 131_100), (199_000, None)])
def test_range_read_is_byte_exact(
    storage: Storage, tmp_path: Path, start: int, end: int | None
) -> None:
    source, data = _source(tmp_path)
    storage.put("r.wav", source)
    got = b"".join(storage.read("r.wav", start, end))
    assert got == data[start : None if end is None else end + 1]


def test_put_replaces_an_existing_object(storage: Storage, tmp_path: Path) -> None:
    first, _ = _source(tmp_path, 1000)
    second, data = _source(tmp_path, 3000)
    storage.put("k.opus", first)
    storage.put("k.opus", second)
    assert read_all(storage, "k.opus") == data


def test_missing_object_is_a_domain_error(storage: Storage) -> None:
    assert not storage.exists("nope.wav")
    with pytest.raises(MissingObject):
        storage.size("nope.wav")
    with pytest.raises(MissingObject):
        b"".join(storage.read("nope.wav"))
    assert storage.delete("nope.wav") is False


def test_delete_and_list(storage: Storage, tmp_path: Path) -> None:
    source, _ = _source(tmp_path, 10)
    for key in ("2026/12/05/x.wav", "2026/12/06/y.wav", "2026/12/06/y.opus"):
        storage.put(key, source)
    assert sorted(storage.list()) == ["2026/12/05/x.wav", "2026/12/06/y.opus", "2026/12/06/y.wav"]
    assert sorted(storage.list("2026/12/06/")) == ["2026/12/06/y.opus", "2026/12/06/y.wav"]
    assert storage.delete("2026/12/06/y.wav") is True
    assert not storage.exists("2026/12/06/y.wav")
    assert sorted(storage.list()) == ["2026/12/05/x.wav", "2026/12/06/y.opus"]


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x.wav", "a/../../x", "a//b", "a\\b"])
def test_keys_outside_the_store_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        check_key(key)
    with pytest.raises(ValueError, match="storage key"):
        storage.exists(key)
