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
==============================  ==============================================================
"""

from __future__ import annotations

import dataclasses
import os
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

ENVIRONMENT: tuple[str, ...] = (
    ENV_DATA_DIR, ENV_CACHE_DIR, ENV_RUNTIME, ENV_VECTOR_STORE, ENV_MILVUS_URI,
    ENV_FASTSCAN_ABOVE, ENV_HNSW_ABOVE, ENV_SECRET_ACCESS_KEY,
)
"""Every ``FACEAUDIT_*`` variable faceaudit reads."""

RUNTIMES: tuple[str, ...] = ("auto", "opencv", "onnxruntime", "openvino")
"""Values of :attr:`Settings.runtime` (the names of ``faceaudit.engine``'s ``Runtime``)."""

VECTOR_STORES: tuple[str, ...] = ("local", "milvus")
"""Values of :attr:`Settings.vector_store` (the names of ``faceaudit.collections.VectorStore``)."""


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (``os.environ`` when ``env`` is None), else defaults.

        A malformed value is an :class:`InvalidParameterError` naming the variable."""
        env = os.environ if env is None else env
        data_dir = env.get(ENV_DATA_DIR)
        cache_dir = env.get(ENV_CACHE_DIR)
        return cls(
            data_dir=Path(data_dir) if data_dir else _default_data_dir(env),
            cache_dir=Path(cache_dir) if cache_dir else _default_cache_dir(env),
            runtime=env.get(ENV_RUNTIME, "auto"),
            vector_store=env.get(ENV_VECTOR_STORE, "local"),
            milvus_uri=env.get(ENV_MILVUS_URI) or None,
            fastscan_above=_face_count(env, ENV_FASTSCAN_ABOVE),
            hnsw_above=_face_count(env, ENV_HNSW_ABOVE),
            secret_access_key=env.get(ENV_SECRET_ACCESS_KEY),
        )

    def with_flags(self, **flags: Any) -> Settings:
        """These settings with the command-line flags that were given (None: not given) on top.

        An unknown flag name is an InvalidParameterError (a typo must not be ignored)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(flags) - names)
        if unknown:
            raise InvalidParameterError(f"unknown settings: {', '.join(unknown)}")
        given = {k: v for k, v in flags.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self


def load_settings(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Flags > environment > defaults: what the command line calls once."""
    return Settings.from_env(env).with_flags(**flags)


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
