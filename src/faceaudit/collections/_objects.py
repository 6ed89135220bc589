"""Object stores: where Rekognition's ``S3Object`` images and videos are read from.

One small interface (:class:`ObjectStore`: ``size``, ``read``, ``local_copy``),
two implementations:

- :class:`FolderStore`, the embedded default (``faceaudit serve --buckets DIR``):
  each bucket is a folder under one root, each object a file. A name can never
  leave its bucket (no ``..``, no absolute names, no symbolic link followed at all,
  also not a bucket folder that is a link; the file is opened with ``openat`` and
  ``O_NOFOLLOW`` one name at a time, so a folder swapped for a link mid-read is no way out),
  and object versions are not kept (``Version`` -> InvalidS3ObjectException).
- :class:`S3Store`, any S3-compatible endpoint through boto3
  (``--s3-endpoint-url``; credentials from the usual AWS chain: environment,
  shared files, instance role).

Who may read which bucket is :class:`BucketAccess`'s business (per key role).
Every failure to read is an :class:`~faceaudit.InvalidS3ObjectError`, as in
Rekognition; sizes over a limit are refused before reading.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from faceaudit._errors import AccessDeniedError, InvalidParameterError, InvalidS3ObjectError

log = logging.getLogger(__name__)

BUCKET_RE = re.compile(r"[0-9A-Za-z.\-_]{3,255}")
"""Rekognition's S3Bucket constraint (3-255 characters of ``[0-9A-Za-z.-_]``)."""
MAX_NAME_CHARS = 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectRef:
    """One object: ``bucket``, ``name`` (the key) and an optional ``version``."""

    bucket: str
    name: str
    version: str | None = None

    @classmethod
    def from_rekognition(cls, doc: Any, what: str = "S3Object") -> ObjectRef:
        """From ``{"Bucket": ..., "Name": ..., "Version": ...}`` (InvalidS3ObjectException if malformed)."""
        if not isinstance(doc, Mapping):
            raise InvalidS3ObjectError(f"{what} must be an object with Bucket and Name")
        bucket, name, version = doc.get("Bucket"), doc.get("Name"), doc.get("Version")
        if not isinstance(bucket, str) or not BUCKET_RE.fullmatch(bucket):
            raise InvalidS3ObjectError(f"{what}.Bucket must be 3-255 characters of [0-9A-Za-z.-_]")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            raise InvalidS3ObjectError(f"{what}.Name must be 1-{MAX_NAME_CHARS} characters")
        if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= 1024):
            raise InvalidS3ObjectError(f"{what}.Version must be 1-1024 characters")
        return cls(bucket, name, version)

    def to_rekognition(self) -> dict[str, str]:
        out = {"Bucket": self.bucket, "Name": self.name}
        if self.version is not None:
            out["Version"] = self.version
        return out

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.name}" + (f"?versionId={self.version}" if self.version else "")


class ObjectStore(Protocol):
    """Reads objects; every failure is an InvalidS3ObjectError."""

    def size(self, ref: ObjectRef) -> int:
        """The object's size in bytes."""

    def read(self, ref: ObjectRef, limit: int) -> bytes:
        """The object's bytes, at most ``limit`` of them (InvalidS3ObjectError beyond: callers
        check ``size`` first and raise their own error, this guards an object growing meanwhile)."""

    def local_copy(self, ref: ObjectRef, limit: int) -> contextlib.AbstractContextManager[Path]:
        """A local file with the object's bytes for the duration of the ``with`` block."""


def _too_large(ref: ObjectRef, size: int, limit: int) -> InvalidS3ObjectError:
    return InvalidS3ObjectError(f"{ref} is {size} bytes; at most {limit} bytes are read")


class FolderStore:
    """Buckets as folders under ``root``; objects as files (``a/b.jpg`` is ``root/bucket/a/b.jpg``).

    Every read opens the object by walking from the root one name at a time, each folder opened
    relative to the one before with ``O_NOFOLLOW`` (``openat``), the file itself too, and then
    reads that open file: no symbolic link is ever followed (a bucket folder that is a link, or a
    link anywhere in a name, is "does not exist"), and swapping a folder for a link while a read
    is under way cannot redirect it (issue 22 M5, L3).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _parts(self, ref: ObjectRef) -> list[str]:
        if ref.version is not None:
            raise InvalidS3ObjectError(
                f"{ref}: the folder object store keeps no object versions; omit S3Object.Version"
            )
        if not BUCKET_RE.fullmatch(ref.bucket) or ref.bucket in (".", "..") or set(ref.bucket) == {"."}:
            raise InvalidS3ObjectError(f"invalid bucket name {ref.bucket!r}")
        parts = ref.name.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise InvalidS3ObjectError(
                f"object name {ref.name!r} is not served by the folder store "
                "(empty, '.' or '..' path segments, backslashes and NUL are refused)"
            )
        return parts

    def _open(self, ref: ObjectRef) -> int:
        """A read-only descriptor of the object's regular file, reached with no link followed."""
        parts = self._parts(ref)
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        folder = os.O_DIRECTORY | flags
        try:
            fd = os.open(self.root, os.O_DIRECTORY | os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise InvalidS3ObjectError(
                f"{ref} cannot be read: the bucket root is unreadable ({exc.strerror})") from None
        try:
            try:
                nxt = os.open(ref.bucket, folder, dir_fd=fd)
            except OSError:
                raise InvalidS3ObjectError(f"bucket {ref.bucket!r} does not exist") from None
            os.close(fd)
            fd = nxt
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    nxt = os.open(name, (flags | os.O_NONBLOCK) if last else folder, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
                        raise InvalidS3ObjectError(f"{ref} does not exist") from None
                    raise InvalidS3ObjectError(f"{ref} cannot be read: {exc.strerror}") from None
                os.close(fd)
                fd = nxt
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device is not an object
                raise InvalidS3ObjectError(f"{ref} does not exist")
            os.set_blocking(fd, True)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def size(self, ref: ObjectRef) -> int:
        fd = self._open(ref)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def read(self, ref: ObjectRef, limit: int) -> bytes:
        fd = self._open(ref)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise InvalidS3ObjectError(f"{ref} cannot be read: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise _too_large(ref, len(data), limit)
        return data

    @contextlib.contextmanager
    def local_copy(self, ref: ObjectRef, limit: int) -> Iterator[Path]:
        """The opened file itself while the block runs (``/proc/self/fd/N`` on Linux: the decoder
        reads exactly the file that was opened), else a private copy of it."""
        fd = self._open(ref)
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise _too_large(ref, size, limit)
            proc = Path(f"/proc/self/fd/{fd}")
            if proc.exists():
                yield proc
                return
            with tempfile.NamedTemporaryFile(prefix="faceaudit-object-") as out:
                with os.fdopen(os.dup(fd), "rb") as src:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        out.write(chunk)
                out.flush()
                yield Path(out.name)
        finally:
            os.close(fd)


class S3Store:
    """Any S3-compatible endpoint, through boto3 (credentials: the usual AWS chain)."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None,
                 temp_dir: str | os.PathLike[str] | None = None, client: Any = None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.temp_dir = temp_dir
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:  # created on first use (never at import or construction)
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region or "us-east-1",
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._client

    def _args(self, ref: ObjectRef) -> dict[str, str]:
        args = {"Bucket": ref.bucket, "Key": ref.name}
        if ref.version is not None:
            args["VersionId"] = ref.version
        return args

    def _call(self, ref: ObjectRef, method: str, **extra: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**self._args(ref), **extra)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "")) or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            raise InvalidS3ObjectError(f"{ref} cannot be read: the object store answered {code}") from None
        except BotoCoreError as exc:
            log.warning("object store error for %s: %s", ref, type(exc).__name__)
            raise InvalidS3ObjectError(f"{ref} cannot be read: {type(exc).__name__}") from None

    def size(self, ref: ObjectRef) -> int:
        return int(self._call(ref, "head_object").get("ContentLength", 0))

    def read(self, ref: ObjectRef, limit: int) -> bytes:
        body = self._call(ref, "get_object")["Body"]
        try:
            data: bytes = body.read(limit + 1)
        finally:
            body.close()
        if len(data) > limit:
            raise _too_large(ref, len(data), limit)
        return data

    @contextlib.contextmanager
    def local_copy(self, ref: ObjectRef, limit: int) -> Iterator[Path]:
        size = self.size(ref)
        if size > limit:
            raise _too_large(ref, size, limit)
        body = self._call(ref, "get_object")["Body"]
        fd, name = tempfile.mkstemp(prefix="faceaudit-object-", dir=self.temp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                written = 0
                try:
                    for chunk in iter(lambda: body.read(_CHUNK), b""):
                        written += len(chunk)
                        if written > limit:
                            raise _too_large(ref, written, limit)
                        out.write(chunk)
                finally:
                    body.close()
            yield Path(name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)


ALL_BUCKETS = "*"


@dataclass(frozen=True)
class BucketAccess:
    """Which buckets each key role may read: role -> bucket names (``"*"``: every bucket).

    The default: admin and operator keys read every bucket, auditor keys none (an
    auditor tests the model through the testing API and never reads case data).
    """

    rules: Mapping[str, frozenset[str]] = field(default_factory=lambda: {
        "admin": frozenset({ALL_BUCKETS}), "operator": frozenset({ALL_BUCKETS}),
    })

    @classmethod
    def parse(cls, specs: Sequence[str]) -> BucketAccess:
        """From ``ROLE=BUCKET[,BUCKET...]`` entries (``ROLE=`` for none, ``ROLE=*`` for all);
        each entry replaces that role's default."""
        rules = dict(cls().rules)
        for spec in specs:
            role, sep, buckets = spec.partition("=")
            role = role.strip()
            if not sep or not role:
                raise InvalidParameterError(f"bucket access {spec!r}: expected ROLE=BUCKET[,BUCKET...]")
            names = frozenset(b.strip() for b in buckets.split(",") if b.strip())
            for name in names - {ALL_BUCKETS}:
                if not BUCKET_RE.fullmatch(name):
                    raise InvalidParameterError(f"bucket access {spec!r}: invalid bucket name {name!r}")
            rules[role] = names
        return cls(rules)

    def check(self, role: str, bucket: str) -> None:
        """AccessDeniedException unless keys of ``role`` may read ``bucket``."""
        allowed = self.rules.get(role, frozenset())
        if ALL_BUCKETS not in allowed and bucket not in allowed:
            raise AccessDeniedError(f"a key with role {role!r} may not read bucket {bucket!r}")
