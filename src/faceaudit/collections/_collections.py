"""FaceCollections: the backend the CLI and the HTTP service call."""

from __future__ import annotations

from faceaudit.collections._ops_collections import CollectionOps
from faceaudit.collections._ops_faces import FaceOps
from faceaudit.collections._ops_search import SearchOps
from faceaudit.collections._ops_tags import TagOps
from faceaudit.collections._ops_users import UserOps
from faceaudit.collections._ops_video import VideoOps


class FaceCollections(CollectionOps, FaceOps, SearchOps, UserOps, TagOps, VideoOps):
    """Persistent face collections with 1:N search and Rekognition's semantics.

    ``FaceCollections(data_dir)``; one method per Rekognition operation, named in
    snake_case, keyword arguments named after the request members in snake_case
    (``collection_id``, ``face_match_threshold``, ...), an ``Image`` passed as raw
    bytes, optional members None (Rekognition's defaults apply). Each returns a
    frozen dataclass whose ``to_rekognition()`` is the operation's response.

    Keyword options (not Rekognition's): ``database_url`` (None: the data dir's SQLite
    file; ``postgresql://...``: a PostgreSQL database that several hosts share, each host's
    in-memory index following its change log), ``index`` ("faiss", or "numpy" brute
    force), ``region`` and ``account_id`` (used in collection ARNs), ``engines``
    (already built :class:`~faceaudit.engine.FaceEngine` objects to reuse),
    ``snapshot_min_faces`` (index snapshots are written after rebuilds of at least
    this many faces). Stored video: ``objects`` (the :class:`ObjectStore` S3Object
    videos are read from), ``video_workers`` (worker threads running jobs in this
    process, default 1), ``video_limits`` (:class:`VideoLimits`),
    ``video_sample_fps`` (frames analysed per second of video, default 2) and
    ``video_observer`` (called with each finished face search before it SUCCEEDS:
    the accountability layer's record of it).

    Safe to share between threads; any number of processes may open the same data
    dir, or hosts the same PostgreSQL database (one writer at a time, readers never blocked).
    Every search sees the latest committed state; it is exact with the flat index (the default) and Milvus, and
    approximate with the fast scan and HNSW (candidates proposed, then scored exactly:
    see :mod:`faceaudit.collections` and :meth:`index_kind`).
    """
