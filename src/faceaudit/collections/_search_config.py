"""Where a collection's vectors are searched: the per-collection index and the vector store.

SQLite is always the truth; the index is a cache of it (``_cache.py``). Two choices:

- the vector store, per process (``VectorStore``): ``local`` (an index in this
  process's memory, the default) or ``milvus`` (a Milvus collection per face
  collection: milvus-lite in ``<data dir>/milvus.db`` by default, or the
  standalone/cluster server at ``milvus_uri``);
- the local index, per collection (``IndexKind``): ``flat`` (exact, the
  default and the oracle) or ``hnsw`` (FAISS HNSW graph: approximate candidates,
  exact scores). A collection created with the tag ``faceaudit:index=hnsw`` (or
  ``=flat``) keeps that choice; otherwise it is ``hnsw`` once it holds more than
  ``hnsw_above`` faces, when the operator set that.

A process takes its choices from :meth:`SearchConfig.from_env` unless given
one: ``FACEAUDIT_VECTOR_STORE`` (local|milvus), ``FACEAUDIT_MILVUS_URI``,
``FACEAUDIT_HNSW_ABOVE`` (a face count). ``faceaudit serve --vector-store
milvus --milvus-uri URI --hnsw-above N`` sets them for its workers.

Audits never use these indexes: they score every probe against every gallery
face exactly (``faceaudit.audit``).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

from faceaudit._errors import InvalidParameterError
from faceaudit.collections._index import HnswParams

INDEX_TAG = "faceaudit:index"
"""CreateCollection/TagResource tag that pins a collection's index kind (``flat`` or ``hnsw``)."""

ENV_VECTOR_STORE = "FACEAUDIT_VECTOR_STORE"
ENV_MILVUS_URI = "FACEAUDIT_MILVUS_URI"
ENV_HNSW_ABOVE = "FACEAUDIT_HNSW_ABOVE"


class IndexKind(str, enum.Enum):
    FLAT = "flat"
    HNSW = "hnsw"


class VectorStore(str, enum.Enum):
    LOCAL = "local"
    MILVUS = "milvus"


def parse_index_kind(value: str, what: str = f"tag {INDEX_TAG}") -> IndexKind:
    try:
        return IndexKind(str(value).strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in IndexKind)
        raise InvalidParameterError(f"{what} must be one of {known}, got {value!r}") from None


def checked_index_tag(tags: dict) -> dict:
    """``tags`` with a ``faceaudit:index`` value checked and lower-cased (InvalidParameterError)."""
    if INDEX_TAG in tags:
        return {**tags, INDEX_TAG: parse_index_kind(tags[INDEX_TAG]).value}
    return tags


@dataclass(frozen=True)
class SearchConfig:
    """A process's vector store and index choices (see the module docstring)."""

    vector_store: VectorStore = VectorStore.LOCAL
    milvus_uri: Optional[str] = None
    """Milvus server URI (http://host:19530) or a milvus-lite file; None: <data dir>/milvus.db."""
    hnsw_above: Optional[int] = None
    """Collections without an index tag use HNSW above this many faces; None: never."""
    hnsw: HnswParams = field(default_factory=HnswParams)

    def __post_init__(self) -> None:
        if self.hnsw_above is not None and self.hnsw_above < 0:
            raise InvalidParameterError("the HNSW size threshold must be a face count >= 0")

    def kind_for(self, tags: Mapping[str, str], face_count: int) -> IndexKind:
        """The local index a collection with these tags and this many faces uses."""
        if INDEX_TAG in tags:
            return parse_index_kind(tags[INDEX_TAG])
        if self.hnsw_above is not None and face_count > self.hnsw_above:
            return IndexKind.HNSW
        return IndexKind.FLAT

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "SearchConfig":
        env = os.environ if env is None else env
        store = env.get(ENV_VECTOR_STORE, "").strip().lower() or VectorStore.LOCAL.value
        try:
            vector_store = VectorStore(store)
        except ValueError:
            raise InvalidParameterError(
                f"{ENV_VECTOR_STORE} must be local or milvus, got {store!r}"
            ) from None
        above = env.get(ENV_HNSW_ABOVE, "").strip()
        try:
            hnsw_above = int(above) if above else None
        except ValueError:
            raise InvalidParameterError(f"{ENV_HNSW_ABOVE} must be a face count, got {above!r}") from None
        return cls(vector_store=vector_store, milvus_uri=env.get(ENV_MILVUS_URI) or None, hnsw_above=hnsw_above)

    def to_env(self) -> dict:
        """The environment variables that make :meth:`from_env` return this config."""
        out = {ENV_VECTOR_STORE: self.vector_store.value}
        if self.milvus_uri:
            out[ENV_MILVUS_URI] = self.milvus_uri
        if self.hnsw_above is not None:
            out[ENV_HNSW_ABOVE] = str(self.hnsw_above)
        return out
