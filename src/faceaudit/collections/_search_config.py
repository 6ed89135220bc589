"""Where a collection's vectors are searched: the per-collection index and the vector store.

SQLite is always the truth; the index is a cache of it (``_cache.py``). Two choices:

- the vector store, per process (``VectorStore``): ``local`` (an index in this
  process's memory, the default) or ``milvus`` (a Milvus collection per face
  collection: milvus-lite in ``<data dir>/milvus.db`` by default, or the
  standalone/cluster server at ``milvus_uri``);
- the local index, per collection (``IndexKind``): ``flat`` (exact, the
  default and the oracle), ``fastscan`` (every face scanned through 4-bit codes,
  the best candidates scored exactly) or ``hnsw`` (FAISS HNSW graph: approximate
  candidates, exact scores). A collection created with the tag
  ``faceaudit:index=fastscan`` (or ``=hnsw``, ``=flat``) keeps that choice;
  otherwise it changes once it holds more than ``fastscan_above`` or
  ``hnsw_above`` faces, when the operator set those (past both, the larger
  threshold's kind: ``--fastscan-above 100000 --hnsw-above 50000000`` means
  flat, then fast scan, then HNSW).

A process takes its choices from the settings it is given
(:meth:`SearchConfig.from_settings`, ``faceaudit._settings``: flags > environment >
defaults); a backend made without them reads the environment's settings
(:meth:`SearchConfig.from_env`). ``faceaudit serve --vector-store milvus --milvus-uri
URI --fastscan-above N`` hands its choices to its workers in the app factory.

Audits never use these indexes: they score every probe against every gallery
face exactly (``faceaudit.audit``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from faceaudit._errors import InvalidParameterError
from faceaudit._settings import (
    ENV_FASTSCAN_ABOVE,
    ENV_HNSW_ABOVE,
    ENV_MILVUS_URI,
    ENV_VECTOR_STORE,
    Settings,
)
from faceaudit.collections._index import FastScanParams, HnswParams

INDEX_TAG = "faceaudit:index"
"""CreateCollection/TagResource tag that pins a collection's index kind (``flat``, ``fastscan`` or ``hnsw``)."""



class IndexKind(str, enum.Enum):  # noqa: UP042 (StrEnum would change str() of a member)
    FLAT = "flat"
    FASTSCAN = "fastscan"
    HNSW = "hnsw"


class VectorStore(str, enum.Enum):  # noqa: UP042 (StrEnum would change str() of a member)
    LOCAL = "local"
    MILVUS = "milvus"


def parse_index_kind(value: str, what: str = f"tag {INDEX_TAG}") -> IndexKind:
    try:
        return IndexKind(str(value).strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in IndexKind)
        raise InvalidParameterError(f"{what} must be one of {known}, got {value!r}") from None


def checked_index_tag(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` with a ``faceaudit:index`` value checked and lower-cased (InvalidParameterError)."""
    if INDEX_TAG in tags:
        return {**tags, INDEX_TAG: parse_index_kind(tags[INDEX_TAG]).value}
    return tags


@dataclass(frozen=True)
class SearchConfig:
    """A process's vector store and index choices (see the module docstring)."""

    vector_store: VectorStore = VectorStore.LOCAL
    milvus_uri: str | None = None
    """Milvus server URI (http://host:19530) or a milvus-lite file; None: <data dir>/milvus.db."""
    hnsw_above: int | None = None
    """Collections without an index tag use HNSW above this many faces; None: never."""
    hnsw: HnswParams = field(default_factory=HnswParams)
    fastscan_above: int | None = None
    """Collections without an index tag use the fast scan above this many faces; None: never."""
    fastscan: FastScanParams = field(default_factory=FastScanParams)

    def __post_init__(self) -> None:
        for name in ("hnsw_above", "fastscan_above"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidParameterError(f"{name.replace('_', ' ')}: a face count >= 0, got {value}")

    def kind_for(self, tags: Mapping[str, str], face_count: int) -> IndexKind:
        """The local index a collection with these tags and this many faces uses."""
        if INDEX_TAG in tags:
            return parse_index_kind(tags[INDEX_TAG])
        passed = [(above, kind) for above, kind in ((self.fastscan_above, IndexKind.FASTSCAN),
                                                    (self.hnsw_above, IndexKind.HNSW))
                  if above is not None and face_count > above]
        return max(passed, key=lambda p: p[0])[1] if passed else IndexKind.FLAT

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchConfig:
        """The vector store and index choices of ``settings``."""
        return cls(vector_store=VectorStore(settings.vector_store), milvus_uri=settings.milvus_uri,
                   hnsw_above=settings.hnsw_above, fastscan_above=settings.fastscan_above)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SearchConfig:
        """The choices of the environment's settings (``os.environ`` when ``env`` is None)."""
        return cls.from_settings(Settings.from_env(env))

    def to_env(self) -> dict[str, str]:
        """The environment variables that make :meth:`from_env` return this config."""
        out = {ENV_VECTOR_STORE: self.vector_store.value}
        if self.milvus_uri:
            out[ENV_MILVUS_URI] = self.milvus_uri
        if self.hnsw_above is not None:
            out[ENV_HNSW_ABOVE] = str(self.hnsw_above)
        if self.fastscan_above is not None:
            out[ENV_FASTSCAN_ABOVE] = str(self.fastscan_above)
        return out

