"""Where recording files live: the local disk (default) or an S3-compatible object store.

Both backends answer the same small protocol, addressed by a *key*: a relative path with
``/`` separators (``2026/12/06/<call_id>.wav``). The engine always writes to the local
recordings directory; the post-processing job ``put``s the WAV and its transcode into the
configured store (a no-op for the local disk, where the key is already that file).

Keys are checked before use: no absolute paths, no ``..``, no empty parts, so a key taken
from a database row can never reach outside the store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from callcenter.errors import CallCenterError
from config.settings import Settings
from recordings.errors import RECORDING_FILE_MISSING, RECORDING_STORAGE_ERROR

CHUNK = 64 * 1024


class StorageError(CallCenterError):
    status_code = 500
    error_id = RECORDING_STORAGE_ERROR


class MissingObject(CallCenterError):
    status_code = 404
    error_id = RECORDING_FILE_MISSING


def check_key(key: str) -> str:
    """A relative key without ``..``/empty parts; raises ValueError naming what is wrong."""
    if not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"storage key {key!r}: must be a relative path with '/' separators")
    if any(part in {"", ".", ".."} for part in key.split("/")):
        raise ValueError(f"storage key {key!r}: '.', '..' and empty parts are not allowed")
    return key


class Storage(Protocol):
    """The operations every backend offers; ``read`` streams an inclusive byte range."""

    name: str

    def put(self, key: str, source: Path) -> None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...


class LocalStorage:
    """Files under one root directory (the recordings directory by default)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: Path) -> None:
        target = self.path(key)
        if target.exists() and source.exists() and os.path.samefile(source, target):
            return  # the engine wrote it in place
        target.parent.mkdir(parents=True, exist_ok=True)
        # copy to a temporary name then rename: a crash never leaves half a file at the key
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        try:
            with os.fdopen(handle, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self.path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise MissingObject(f"recording file {key!r} is missing") from None
        return self._chunks(handle, start, end)

    @staticmethod
    def _chunks(handle: Any, start: int, end: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = handle.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise MissingObject(f"recording file {key!r} is missing") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if not path.exists():
            return False
        path.unlink()
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        if not base.is_dir():
            return
        for directory, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.startswith("."):
                    continue  # temporary files of an unfinished put
                key = Path(directory, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield key


class S3Storage:
    """Objects in one bucket (under an optional key prefix) of an S3-compatible store."""

    name = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    def put(self, key: str, source: Path) -> None:
        # upload_file switches to a multipart upload for large files; an object appears only
        # when the upload completes, so a crash never leaves half an object at the key
        self.client.upload_file(str(source), self.bucket, self._object(key))

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        byte_range = f"bytes={start}-" + ("" if end is None else str(end))
        name = self._object(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, Range=byte_range)
        except Exception as exc:
            if self._missing(exc):
                raise MissingObject(f"recording file {key!r} is missing") from None
            raise StorageError(f"reading {key!r} from the object store failed: {exc}") from exc
        return self._body(answer["Body"])

    @staticmethod
    def _body(body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def size(self, key: str) -> int:
        name = self._object(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if self._missing(exc):
                raise MissingObject(f"recording file {key!r} is missing") from None
            raise StorageError(f"asking the object store about {key!r} failed: {exc}") from exc
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except MissingObject:
            return False
        return True

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        return existed

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])[len(self.prefix) :]


def read_all(storage: Storage, key: str) -> bytes:
    return b"".join(storage.read(key))


def s3_client(settings: Settings) -> Any:
    """A boto3 client for the configured S3-compatible endpoint (imported only when used)."""
    import boto3
    from botocore.config import Config

    s3 = settings.recording_storage
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url or None,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id or None,
        aws_secret_access_key=s3.secret_access_key or None,
        config=Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}
        ),
    )


def storage_for(settings: Settings) -> Storage:
    """The store the settings name: ``local`` (the recordings directory) or ``s3``."""
    config = settings.recording_storage
    if config.backend == "s3":
        return S3Storage(s3_client(settings), config.bucket, config.prefix)
    return LocalStorage(Path(settings.recordings_dir))


def key_for(settings: Settings, path: str | Path) -> str:
    """The storage key of a file the engine wrote under the recordings directory."""
    root = Path(settings.recordings_dir).resolve()
    absolute = Path(path).resolve()
    try:
        return check_key(absolute.relative_to(root).as_posix())
    except ValueError:
        raise StorageError(
            f"recording file {str(path)!r} is not under the recordings directory {str(root)!r}"
        ) from None
