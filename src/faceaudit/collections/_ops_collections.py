"""CreateCollection, DescribeCollection, ListCollections, DeleteCollection."""

from __future__ import annotations

from collections.abc import Mapping

from faceaudit._errors import ResourceAlreadyExistsError
from faceaudit.collections import _tokens
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import Backend
from faceaudit.collections._results import (
    CreateCollectionResult,
    DeleteCollectionResult,
    DescribeCollectionResult,
    ListCollectionsResult,
)
from faceaudit.collections._search_config import checked_index_tag
from faceaudit.engine import DEFAULT_MODEL, get_model


class CollectionOps(Backend):
    def create_collection(
        self, *, collection_id: str, tags: Mapping[str, str] | None = None, model: str | None = None
    ) -> CreateCollectionResult:
        """Create an empty collection pinned to ``model`` (faceaudit's extension; default sface).

        The pin is the model's FaceModelVersion: every face indexed or searched in
        the collection uses that model, and embeddings of different models are
        never compared. The tag ``faceaudit:index`` (``flat`` or ``hnsw``) pins the
        collection's search index (default: flat, exact; see docs/scaling.md).
        ResourceAlreadyExistsException if the id is taken.
        """
        name = v.collection_id(collection_id)
        tag_map = checked_index_tag(v.tags(tags))  # faceaudit:index=flat|hnsw pins the index kind
        spec = get_model(model or DEFAULT_MODEL)  # InvalidParameterError for unknown models
        with self._store.write(create=True) as conn:
            if self._store.find_collection(conn, name) is not None:
                raise ResourceAlreadyExistsError(f"collection {name!r} already exists")
            self._store.insert_collection(conn, name, spec.name, spec.version, spec.dimension, tag_map)
        return CreateCollectionResult(collection_arn=self.collection_arn(name), face_model_version=spec.version)

    def describe_collection(self, *, collection_id: str) -> DescribeCollectionResult:
        """Face and user counts, FaceModelVersion, ARN and creation time (epoch seconds)."""
        name = v.collection_id(collection_id)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
        return DescribeCollectionResult(
            face_count=coll.face_count,
            face_model_version=coll.model_version,
            collection_arn=self.collection_arn(name),
            creation_timestamp=coll.created_at,
            user_count=coll.user_count,
            model=coll.model,
        )

    def list_collections(
        self, *, next_token: str | None = None, max_results: int | None = None
    ) -> ListCollectionsResult:
        """Collection ids in creation order, ``max_results`` (default 1000, at most 4096) per page."""
        limit = v.page_size(max_results)
        with self._store.read() as conn:
            scope = _tokens.scope_of("collections")
            after = 0
            if next_token is not None:
                after = _tokens.decode(self._store.secret(conn), next_token, "collections", scope)
            rows = self._store.list_collections(conn, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            token = (  # more rows: the database exists
                _tokens.encode(self._store.secret(conn), "collections", scope, rows[-1].rowid)
                if more and conn is not None else None
            )
        return ListCollectionsResult(
            collection_ids=tuple(r.name for r in rows),
            face_model_versions=tuple(r.model_version for r in rows),
            next_token=token,
        )

    def delete_collection(self, *, collection_id: str) -> DeleteCollectionResult:
        """Delete the collection with its faces, users and index snapshot."""
        name = v.collection_id(collection_id)
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)
            self._store.delete_collection(conn, coll.rowid)
        self._cache.drop(coll.rowid, remove_snapshot=True)
        return DeleteCollectionResult()
