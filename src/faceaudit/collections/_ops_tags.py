"""TagResource, UntagResource, ListTagsForResource on collections (by collection ARN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from faceaudit._errors import InvalidParameterError
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import Backend
from faceaudit.collections._results import ListTagsForResourceResult, TagResourceResult
from faceaudit.collections._search_config import checked_index_tag


class TagOps(Backend):
    def tag_resource(self, *, resource_arn: str, tags: Mapping[str, str] | None = None) -> TagResourceResult:
        """Add or overwrite tags of a collection (at most 200 tags in all)."""
        name = self.collection_of_arn(resource_arn)
        new = checked_index_tag(v.tags(tags))  # faceaudit:index switches the index at the next search
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)
            merged = {**self._store.collection_tags(conn, coll.rowid), **new}
            if len(merged) > v.MAX_TAGS:
                raise InvalidParameterError(f"a collection may hold at most {v.MAX_TAGS} tags")
            self._store.set_collection_tags(conn, coll.rowid, merged)
        return TagResourceResult()

    def untag_resource(self, *, resource_arn: str, tag_keys: Sequence[str] = ()) -> TagResourceResult:
        """Remove tags of a collection by key (absent keys are ignored, as Rekognition does)."""
        name = self.collection_of_arn(resource_arn)
        keys = list(tag_keys or ())
        if not all(isinstance(k, str) for k in keys) or len(keys) > v.MAX_TAGS:
            raise InvalidParameterError(f"TagKeys must be at most {v.MAX_TAGS} strings")
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)
            tags = self._store.collection_tags(conn, coll.rowid)
            self._store.set_collection_tags(conn, coll.rowid, {k: t for k, t in tags.items() if k not in keys})
        return TagResourceResult()

    def list_tags_for_resource(self, *, resource_arn: str) -> ListTagsForResourceResult:
        """The tags of a collection."""
        name = self.collection_of_arn(resource_arn)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            tags = self._store.collection_tags(conn, coll.rowid)
        return ListTagsForResourceResult(tags=tuple(sorted(tags.items())))
