"""faceaudit's settings: one typed object, loaded once at the edge.

Precedence: command-line flags > ``FACEAUDIT_*`` environment variables > defaults.
This is the only module that reads ``FACEAUDIT_*`` variables. The command line
loads :class:`Settings` once (:func:`load_settings` with its flags) and passes what
each part needs as explicit parameters; ``faceaudit serve`` hands the settings to
its worker processes inside the picklable app factory. Library code called without
settings (a script using :class:`~faceaudit.collections.FaceCollections` directly)
falls back on :func:`environment_settings`, which reads the environment on each
call (nothing is read at import time).

Environment variables (every one documented in README.md):

==============================  ==============================================================
``FACEAUDIT_DATA_DIR``          data dir (collections, keys, search log); else
                                ``$XDG_DATA_HOME/faceaudit``, else ``~/.local/share/faceaudit``
``FACEAUDIT_CACHE_DIR``         files faceaudit can always make again (model files, folded
                                networks); else ``$XDG_CACHE_HOME/faceaudit``, else
                                ``~/.cache/faceaudit``
``FACEAUDIT_RUNTIME``           what runs the sface networks: auto, opencv, onnxruntime, openvino
``FACEAUDIT_VECTOR_STORE``      local (an index in each process) or milvus
``FACEAUDIT_MILVUS_URI``        Milvus server URI or milvus-lite file
``FACEAUDIT_FASTSCAN_ABOVE``    untagged collections use the fast scan above this many faces
``FACEAUDIT_HNSW_ABOVE``        untagged collections use HNSW above this many faces
``FACEAUDIT_SECRET_ACCESS_KEY`` a reviewer's secret for ``faceaudit review`` (never logged)
``FACEAUDIT_DATABASE_URL``      the database the stores share: ``postgresql://user@host/db``
                                (several hosts, one truth), or ``sqlite:///DATA_DIR`` / unset:
                                the SQLite files in the data dir (the password is never shown)
==============================  ==============================================================
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceaudit._errors import InvalidParameterError

ENV_DATA_DIR = "FACEAUDIT_DATA_DIR"
ENV_CACHE_DIR = "FACEAUDIT_CACHE_DIR"
ENV_RUNTIME = "FACEAUDIT_RUNTIME"
ENV_VECTOR_STORE = "FACEAUDIT_VECTOR_STORE"
ENV_MILVUS_URI = "FACEAUDIT_MILVUS_URI"
ENV_FASTSCAN_ABOVE = "FACEAUDIT_FASTSCAN_ABOVE"
ENV_HNSW_ABOVE = "FACEAUDIT_HNSW_ABOVE"
ENV_SECRET_ACCESS_KEY = "FACEAUDIT_SECRET_ACCESS_KEY"
ENV_DATABASE_URL = "FACEAUDIT_DATABASE_URL"

ENVIRONMENT: tuple[str, ...] = (
    ENV_DATA_DIR, ENV_CACHE_DIR, ENV_RUNTIME, ENV_VECTOR_STORE, ENV_MILVUS_URI,
    ENV_FASTSCAN_ABOVE, ENV_HNSW_ABOVE, ENV_SECRET_ACCESS_KEY, ENV_DATABASE_URL,
)
"""Every ``FACEAUDIT_*`` variable faceaudit reads."""

RUNTIMES: tuple[str, ...] = ("auto", "opencv", "onnxruntime", "openvino")
"""Values of :attr:`Settings.runtime` (the names of ``faceaudit.engine``'s ``Runtime``)."""

VECTOR_STORES: tuple[str, ...] = ("local", "milvus")
"""Values of :attr:`Settings.vector_store` (the names of ``faceaudit.collections.VectorStore``)."""


POSTGRES_SCHEMES: tuple[str, ...] = ("postgresql://", "postgres://", "postgresql+psycopg://")
"""How a PostgreSQL URL may begin (as libpq and SQLAlchemy write them)."""


def redact_url(url: str) -> str:
    """``url`` without its password (``user:password@host`` -> ``user@host``; a ``password=``
    parameter -> ``password=***``), for messages and logs."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        cred, _, host = authority.rpartition("@")
        authority = f"{cred.split(':', 1)[0]}@{host}"
    # a password given as a query parameter (postgresql://h/db?password=...) is hidden too
    path = re.sub(r"(?i)(password=)[^&]*", r"\1***", path)
    return f"{head}{sep}{authority}{slash}{path}"


def _check_database_url(url: str, data_dir: Path) -> str:
    """The database URL, checked: ``postgresql://...`` or ``sqlite:///DATA_DIR``."""
    url = url.strip()
    if url.startswith(POSTGRES_SCHEMES):
        return url
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///"):]
        if not raw:
            raise InvalidParameterError(f"{_DATABASE}: sqlite:/// needs the data dir's path")
        path = Path(raw).expanduser()
        if path.resolve() != data_dir.resolve():
            raise InvalidParameterError(
                f"{_DATABASE} {url!r}: with SQLite every store keeps its file in the data dir; "
                f"the URL names {path}, the data dir is {data_dir} (give the same, or leave the URL out)")
        return url
    raise InvalidParameterError(
        f"{_DATABASE} {redact_url(url)!r}: use postgresql://user@host:port/db, or "
        "sqlite:///DATA_DIR (the default: each store's SQLite file in the data dir)")


_DATABASE = f"the database URL (--database, {ENV_DATABASE_URL})"


def _default_data_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "faceaudit"


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "faceaudit"


@dataclass(frozen=True)
class Settings:
    """Everything faceaudit is configured with, resolved (see the module docstring)."""

    data_dir: Path
    """Where collections, access keys and the search log live (created 0700 on first use)."""
    cache_dir: Path
    """Where files that can always be made again are kept (no evidence, no secrets)."""
    runtime: str = "auto"
    """What runs the sface networks: one of :data:`RUNTIMES` (auto: the fastest installed)."""
    vector_store: str = "local"
    """Where faces are searched: one of :data:`VECTOR_STORES`."""
    milvus_uri: str | None = None
    """Milvus server URI (http://host:19530) or milvus-lite file; None: ``<data dir>/milvus.db``."""
    fastscan_above: int | None = None
    """Collections without a ``faceaudit:index`` tag use the fast scan above this many faces
    (a face count >= 0); None: never."""
    hnsw_above: int | None = None
    """Collections without a ``faceaudit:index`` tag use HNSW above this many faces; None: never."""
    secret_access_key: str | None = field(default=None, repr=False)
    """A reviewer's secret access key (``faceaudit review``); never shown in a repr."""
    database_url: str | None = field(default=None, repr=False)
    """The database the stores share: ``postgresql://user:password@host:port/db``, or None (or
    ``sqlite:///<data dir>``): each store's SQLite file in the data dir. Shown only redacted
    (:attr:`database_shown`): the repr leaves it out, messages hide the password."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        runtime = (self.runtime or "auto").strip().lower() or "auto"
        if runtime not in RUNTIMES:
            raise InvalidParameterError(f"{ENV_RUNTIME}={self.runtime!r} is not one of: {', '.join(RUNTIMES)}")
        object.__setattr__(self, "runtime", runtime)
        store = (self.vector_store or "local").strip().lower() or "local"
        if store not in VECTOR_STORES:
            raise InvalidParameterError(f"{ENV_VECTOR_STORE} must be local or milvus, got {self.vector_store!r}")
        object.__setattr__(self, "vector_store", store)
        for name, env_name in (("fastscan_above", ENV_FASTSCAN_ABOVE), ("hnsw_above", ENV_HNSW_ABOVE)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidParameterError(f"{env_name} ({name.replace('_', ' ')}): a face count >= 0, got {value!r}")
        if self.database_url is not None:
            url = self.database_url.strip()
            object.__setattr__(self, "database_url", _check_database_url(url, self.data_dir) if url else None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
        return f"Settings({shown}, database={self.database_shown!r})"

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL URL every store shares (the ``database_url`` keyword of the stores), or
        None: each store keeps its SQLite file in the data dir."""
        url = self.database_url
        return url if url is not None and url.startswith(POSTGRES_SCHEMES) else None

    @property
    def database_shown(self) -> str:
        """Where the stores live, for people: the URL without its password, or the data dir."""
        return redact_url(self.postgres_url) if self.postgres_url else f"SQLite files in {self.data_dir}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (``os.environ`` when ``env`` is None), else defaults.

        A malformed value is an :class:`InvalidParameterError` naming the variable."""
        return cls(**_environment_values(os.environ if env is None else env))

    def with_flags(self, **flags: Any) -> Settings:
        """These settings with the command-line flags that were given (None: not given) on top.

        An unknown flag name is an InvalidParameterError (a typo must not be ignored)."""
        given = _given_flags(flags)
        return dataclasses.replace(self, **given) if given else self


def _given_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(flags) - names)
    if unknown:
        raise InvalidParameterError(f"unknown settings: {', '.join(unknown)}")
    return {k: v for k, v in flags.items() if v is not None}


def _environment_values(env: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of :class:`Settings` the environment gives (defaults for the rest)."""
    data_dir = env.get(ENV_DATA_DIR)
    cache_dir = env.get(ENV_CACHE_DIR)
    return dict(
            data_dir=Path(data_dir) if data_dir else _default_data_dir(env),
            cache_dir=Path(cache_dir) if cache_dir else _default_cache_dir(env),
            runtime=env.get(ENV_RUNTIME, "auto"),
            vector_store=env.get(ENV_VECTOR_STORE, "local"),
            milvus_uri=env.get(ENV_MILVUS_URI) or None,
            fastscan_above=_face_count(env, ENV_FASTSCAN_ABOVE),
            hnsw_above=_face_count(env, ENV_HNSW_ABOVE),
            secret_access_key=env.get(ENV_SECRET_ACCESS_KEY),
            database_url=env.get(ENV_DATABASE_URL) or None,
    )


def load_settings(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Flags > environment > defaults: what the command line calls once (one validation of the
    whole, so a flag may settle what the environment alone would not, e.g. ``--data-dir`` that
    ``sqlite:///DIR`` must name)."""
    values = _environment_values(os.environ if env is None else env)
    values.update(_given_flags(flags))
    return Settings(**values)


def environment_settings() -> Settings:
    """The settings of the environment alone, read now: the fallback of library code called
    without explicit settings."""
    return Settings.from_env()


def _face_count(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:
        raise InvalidParameterError(f"{name} must be a face count, got {raw!r}") from None
