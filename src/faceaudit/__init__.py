"""faceaudit: open, self-hosted face recognition with the ACLU's test and accountability built in.

Layers: :mod:`faceaudit.engine` -> :mod:`faceaudit.collections` -> :mod:`faceaudit.service`
and :mod:`faceaudit.audit` -> :mod:`faceaudit.accountability`.
Every deliberate error is a :class:`FaceAuditError`, exported here; each names the AWS error it
maps to (``aws_code``), its HTTP status and its CLI exit code.
"""

from faceaudit._errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    FaceAuditError,
    IdempotentParameterMismatchError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    IncompleteSignatureError,
    InvalidImageFormatError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    InvalidS3ObjectError,
    InvalidSignatureError,
    LengthRequiredError,
    MissingAuthenticationTokenError,
    ModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
    NoFaceError,
    RemoteServiceError,
    RequestTooLargeError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    SerializationError,
    ServiceQuotaExceededError,
    ServiceUnavailableError,
    ThrottlingError,
    UnknownOperationError,
    UnrecognizedClientError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "ConflictError",
    "FaceAuditError",
    "IdempotentParameterMismatchError",
    "ImageError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "IncompleteSignatureError",
    "InvalidImageFormatError",
    "InvalidPaginationTokenError",
    "InvalidParameterError",
    "InvalidS3ObjectError",
    "InvalidSignatureError",
    "LengthRequiredError",
    "MissingAuthenticationTokenError",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "NoFaceError",
    "RemoteServiceError",
    "RequestTooLargeError",
    "ResourceAlreadyExistsError",
    "ResourceNotFoundError",
    "SerializationError",
    "ServiceQuotaExceededError",
    "ServiceUnavailableError",
    "ThrottlingError",
    "UnknownOperationError",
    "UnrecognizedClientError",
    "__version__",
]
