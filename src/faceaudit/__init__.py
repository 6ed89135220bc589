"""faceaudit: open, self-hosted face recognition with the ACLU's test and accountability built in.

Layers: :mod:`faceaudit.engine` -> :mod:`faceaudit.collections` -> :mod:`faceaudit.service`
and :mod:`faceaudit.audit` -> :mod:`faceaudit.accountability`.
Every deliberate error is a :class:`FaceAuditError` , exported here.
"""

from faceaudit._errors import (
    AccessDeniedError,
    ConflictError,
    FaceAuditError,
    IdempotentParameterMismatchError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    ModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
    NoFaceError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError", "ConflictError", "FaceAuditError", "ImageError", "ImageTooLargeError",
    "IdempotentParameterMismatchError", "ImageTooSmallError", "InvalidImageFormatError",
    "InvalidPaginationTokenError", "InvalidParameterError", "ModelError",
    "ModelIntegrityError", "ModelNotInstalledError", "NoFaceError", "ResourceAlreadyExistsError",
    "ResourceNotFoundError", "ServiceQuotaExceededError", "__version__",
]
