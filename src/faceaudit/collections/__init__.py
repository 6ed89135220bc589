"""Persistent face collections with 1:N search, speaking Rekognition's face API.

Public surface::

    from faceaudit.collections import FaceCollections
    fc = FaceCollections("/var/lib/faceaudit")
    fc.create_collection(collection_id="gallery")
    fc.index_faces(collection_id="gallery", image=jpeg_bytes, external_image_id="case-17")
    result = fc.search_faces_by_image(collection_id="gallery", image=probe_bytes)
    result.to_rekognition()        # SearchFacesByImage response shape

SQLite (``<data dir>/collections.sqlite3``) holds everything, or PostgreSQL
(``FaceCollections(data_dir, database_url="postgresql://...")``) shared by several
hosts; each process keeps a vector index as a cache rebuilt or caught up from the
database's change log, chosen per collection
(``faceaudit:index`` tag or ``SearchConfig``; docs/scaling.md). Which searches are
exact: with the flat index (FAISS, the default) and with Milvus (a FLAT Milvus
index) every face is scored, so the search is exact; the fast scan and HNSW are
approximate: they propose candidates (the fast scan from 4-bit codes, HNSW from
a graph) and only those are scored exactly, so a face at or above the threshold
can be missed (measured recall: docs/scaling.md). Every similarity returned is
exact either way. ``DescribeCollection``'s tags (``faceaudit:index``), ``faceaudit
collection describe`` and each search-log record say which index served a search.
Batch indexing of a directory or manifest: :func:`index_batch`.
Every search result is an investigative lead, not an identification.
"""

from faceaudit.collections._backend import BackendOptions
from faceaudit.collections._batch import BatchReport, index_batch
from faceaudit.collections._collections import FaceCollections
from faceaudit.collections._index import (
    FaissIndex,
    FastScanIndex,
    FastScanParams,
    HnswIndex,
    HnswParams,
    NumpyIndex,
    VectorIndex,
    make_index,
)
from faceaudit.collections._jobs import requested_by
from faceaudit.collections._manifest import (
    BatchItem,
    ManifestRow,
    ManifestTable,
    map_external_image_id,
    read_manifest,
    read_manifest_table,
    scan_directory,
)
from faceaudit.collections._objects import BucketAccess, FolderStore, ObjectRef, ObjectStore, S3Store
from faceaudit.collections._ops_video import (
    FaceDetectionAnalysis,
    FaceSearchAnalysis,
    FaceSighting,
    PersonFound,
    PersonSighting,
    StartVideoJobResult,
    VideoJobPage,
)
from faceaudit.collections._quality import BARS, REASONS, QualityBar, passes_quality, quality_band, quality_score
from faceaudit.collections._results import (
    CANDIDATE_NOTICE,
    AssociateFacesResult,
    CreateCollectionResult,
    CreateUserResult,
    DeleteCollectionResult,
    DeleteFacesResult,
    DeleteUserResult,
    DescribeCollectionResult,
    DisassociateFacesResult,
    Face,
    FaceMatch,
    FaceRecord,
    IndexFacesResult,
    ListCollectionsResult,
    ListFacesResult,
    ListTagsForResourceResult,
    ListUsersResult,
    SearchFacesByImageResult,
    SearchFacesResult,
    SearchUsersByImageResult,
    SearchUsersResult,
    TagResourceResult,
    UnindexedFace,
    UnsearchedFace,
    UnsuccessfulFaceAssociation,
    UnsuccessfulFaceDeletion,
    UnsuccessfulFaceDisassociation,
    User,
    UserMatch,
)
from faceaudit.collections._search_config import INDEX_TAG, IndexKind, SearchConfig, VectorStore
from faceaudit.collections._validate import NormalisedRequest, normalise_request
from faceaudit.collections._video import (
    DEFAULT_SAMPLE_FPS,
    VideoLimits,
    VideoMetadata,
    check_sample_fps,
)

__all__ = [
    "AssociateFacesResult", "BackendOptions", "BARS", "BatchItem", "BatchReport", "CANDIDATE_NOTICE",
    "CreateCollectionResult", "CreateUserResult", "DeleteCollectionResult", "DeleteFacesResult",
    "DeleteUserResult", "DescribeCollectionResult", "DisassociateFacesResult", "Face",
    "FaceCollections", "FaceMatch", "FaceRecord", "FaissIndex", "FastScanIndex", "FastScanParams", "HnswIndex",
    "HnswParams", "INDEX_TAG", "IndexFacesResult", "IndexKind",
    "ListCollectionsResult", "ListFacesResult", "ListTagsForResourceResult", "ListUsersResult", "NumpyIndex",
    "QualityBar", "REASONS", "SearchFacesByImageResult", "SearchFacesResult", "SearchUsersByImageResult",
    "SearchUsersResult", "SearchConfig", "TagResourceResult", "UnindexedFace", "UnsearchedFace",
    "UnsuccessfulFaceAssociation", "UnsuccessfulFaceDeletion", "UnsuccessfulFaceDisassociation", "User", "UserMatch",
    "VectorIndex", "VectorStore", "index_batch", "make_index", "map_external_image_id", "normalise_request",
    "NormalisedRequest", "passes_quality", "quality_band",
    "quality_score", "read_manifest", "scan_directory",
    # the one manifest reader (batch indexing and the audit)
    "ManifestRow", "ManifestTable", "read_manifest_table",
    # objects in object stores (S3Object) and stored video
    "BucketAccess", "DEFAULT_SAMPLE_FPS", "FaceDetectionAnalysis", "FaceSearchAnalysis", "FolderStore",
    "FaceSighting", "ObjectRef", "ObjectStore", "PersonFound", "PersonSighting", "S3Store",
    "StartVideoJobResult", "VideoJobPage", "VideoLimits", "VideoMetadata", "check_sample_fps", "requested_by",
]
