"""The one exception hierarchy of faceaudit.

Every error the library raises on purpose is a :class:`FaceAuditError`. Each
class names the Rekognition error it maps to (``aws_code``), the HTTP status
the service answers with, and the CLI exit code. The mapping happens only at
the edges: the CLI turns an error into a one-line message and its exit code,
the HTTP service into ``{"__type": aws_code, "message": ...}``.
"""

from __future__ import annotations


class FaceAuditError(Exception):
    """Base of every faceaudit error."""

    aws_code = "InternalServerError"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParameterError(FaceAuditError):
    """A parameter is missing, malformed or out of range."""

    aws_code = "InvalidParameterException"
    http_status = 400
    exit_code = 2


class NoFaceError(InvalidParameterError):
    """The image holds no face where one is required."""


class ManifestError(InvalidParameterError):
    """A manifest CSV that cannot be used: missing, not UTF-8, a required column absent, a
    duplicated column, or a bad row (``line`` is the file's line number, ``column`` the
    column concerned; either is None when the error is about the whole file)."""

    def __init__(self, message: str, path: str = "", line: int | None = None,
                 column: str | None = None) -> None:
        super().__init__(message)
        self.path, self.line, self.column = path, line, column


class InvalidPaginationTokenError(InvalidParameterError):
    """A NextToken that this data dir did not issue, or issued for another listing."""

    aws_code = "InvalidPaginationTokenException"


class IdempotentParameterMismatchError(InvalidParameterError):
    """A ClientRequestToken reused with different parameters."""

    aws_code = "IdempotentParameterMismatchException"


class ImageError(FaceAuditError):
    """Base of the errors about the image bytes themselves."""

    aws_code = "InvalidImageFormatException"
    http_status = 400
    exit_code = 3


class InvalidImageFormatError(ImageError):
    """Empty, truncated, corrupt, or not a JPEG or PNG image."""


class ImageFileNotFoundError(InvalidImageFormatError):
    """An image path that does not exist: the caller's mistake (exit 2, a parameter error), not a
    bad image (exit 3); over the API an image is never a path."""

    exit_code = 2


class ImageTooSmallError(ImageError):
    """The image is smaller than the 80x80 pixels a face search needs."""

    aws_code = "InvalidParameterException"


class ImageTooLargeError(ImageError):
    """The image exceeds the 5 MB byte limit or the pixel limit (decompression bomb)."""

    aws_code = "ImageTooLargeException"


class ResourceNotFoundError(FaceAuditError):
    """A collection, face or user that does not exist."""

    aws_code = "ResourceNotFoundException"
    http_status = 400
    exit_code = 4


class ResourceAlreadyExistsError(FaceAuditError):
    """A collection or user that already exists."""

    aws_code = "ResourceAlreadyExistsException"
    http_status = 400
    exit_code = 5


class ConflictError(FaceAuditError):
    """The request conflicts with the current state (e.g. a face already owned by another user)."""

    aws_code = "ConflictException"
    http_status = 400
    exit_code = 5


class ServiceQuotaExceededError(FaceAuditError):
    """A size limit of a collection or user was reached."""

    aws_code = "ServiceQuotaExceededException"
    http_status = 400
    exit_code = 5


class AccessDeniedError(FaceAuditError):
    """The caller's key or role may not do this, or a policy refused it."""

    aws_code = "AccessDeniedException"
    http_status = 400
    exit_code = 6


class LegalHoldError(AccessDeniedError):
    """A deleting operation on a collection under legal hold (``faceaudit retention set C
    --legal-hold``): refused and logged until an admin lifts the hold. Exit code 10."""

    exit_code = 10


class ModelError(FaceAuditError):
    """A face model cannot be used: not installed, or its weights fail the hash check."""

    aws_code = "InternalServerError"
    http_status = 500
    exit_code = 7


class ModelNotInstalledError(ModelError):
    """The model's optional dependency is not installed."""


class ModelIntegrityError(ModelError):
    """A weights file is missing or its SHA-256 differs from the pinned digest."""


class WorkerStartError(ModelError):
    """The worker processes that run a face model keep dying before they finish any image."""


# --- HTTP service: protocol, authentication and limits -------------------------------------------


class UnknownOperationError(FaceAuditError):
    """The request names no operation this service offers (X-Amz-Target)."""

    aws_code = "UnknownOperationException"
    http_status = 400
    exit_code = 2


class SerializationError(FaceAuditError):
    """The request body is not a JSON object (or not JSON at all)."""

    aws_code = "SerializationException"
    http_status = 400
    exit_code = 2


class InvalidS3ObjectError(InvalidParameterError):
    """An S3Object that cannot be read: no object store configured, no such bucket or object,
    a name that escapes its bucket, an unsupported Version, or a store that refused access."""

    aws_code = "InvalidS3ObjectException"


class VideoError(FaceAuditError):
    """Base of the errors about a video itself (stored-video operations)."""

    aws_code = "InvalidParameterException"
    http_status = 400
    exit_code = 3


class InvalidVideoError(VideoError):
    """A video that cannot be decoded: truncated, an unknown container or codec, zero frames."""


class VideoTooLargeError(VideoError):
    """A video over the size, duration or resolution limit."""

    aws_code = "VideoTooLargeException"


class LimitExceededError(FaceAuditError):
    """Too many jobs are waiting (stored-video jobs, testing-API audits); start another when one
    has finished."""

    aws_code = "LimitExceededException"
    http_status = 400
    exit_code = 8


class RequestTooLargeError(FaceAuditError):
    """The request body exceeds the service's size limit; refused before it is read."""

    aws_code = "RequestEntityTooLargeException"
    http_status = 413
    exit_code = 2


class LengthRequiredError(FaceAuditError):
    """The request has no Content-Length (chunked bodies are refused)."""

    aws_code = "LengthRequiredException"
    http_status = 411
    exit_code = 2


class AuthenticationError(FaceAuditError):
    """Base of the refusals of a request's credentials (SigV4). Never touches data."""

    aws_code = "AccessDeniedException"
    http_status = 400
    exit_code = 6


class MissingAuthenticationTokenError(AuthenticationError):
    """The request is not signed."""

    aws_code = "MissingAuthenticationTokenException"


class IncompleteSignatureError(AuthenticationError):
    """The Authorization header is malformed or lacks a required part."""

    aws_code = "IncompleteSignatureException"


class InvalidSignatureError(AuthenticationError):
    """The signature does not match, or the signed time is too far from the server's clock."""

    aws_code = "InvalidSignatureException"


class UnrecognizedClientError(AuthenticationError):
    """The access key is unknown or revoked (or a session token was sent)."""

    aws_code = "UnrecognizedClientException"


class ThrottlingError(FaceAuditError):
    """The caller's request rate limit was exceeded; retry later (boto3 retries it)."""

    aws_code = "ThrottlingException"
    http_status = 500
    exit_code = 8


class ServiceUnavailableError(FaceAuditError):
    """The service is busy (e.g. too many connections or request bodies at once); retry later
    (boto3 retries HTTP 503 by itself)."""

    aws_code = "ServiceUnavailableException"
    http_status = 503
    exit_code = 8


class RemoteServiceError(FaceAuditError):
    """A Rekognition-compatible endpoint refused a request, or could not be reached.

    ``aws_code`` is the error name the endpoint answered with (or
    ``ServiceUnavailableException`` when it could not be reached).
    """

    aws_code = "ServiceUnavailableException"
    http_status = 502
    exit_code = 9

    def __init__(self, message: str, aws_code: str | None = None) -> None:
        super().__init__(message)
        if aws_code:
            self.aws_code = aws_code


class UnsafePermissionsError(AccessDeniedError):
    """The data dir (or a file holding secrets or faces) is open to group or other users."""


class RequestHeaderFieldsTooLargeError(FaceAuditError):
    """The request's header block is too large or has too many fields (HTTP 431)."""

    aws_code = "RequestHeaderFieldsTooLargeException"
    http_status = 431
    exit_code = 2


class UriTooLongError(FaceAuditError):
    """The request's target (path and query) is too long (HTTP 414)."""

    aws_code = "UriTooLongException"
    http_status = 414
    exit_code = 2


class RequestTimeoutError(FaceAuditError):
    """The request (its headers or its body) did not arrive in time (HTTP 408)."""

    aws_code = "RequestTimeoutException"
    http_status = 408
    exit_code = 8


class DataVersionError(FaceAuditError):
    """A database written by a newer faceaudit (a schema this one does not know), or a
    migration that would break the data; nothing was changed."""

    aws_code = "InternalServerError"
    http_status = 500
    exit_code = 1


class PolicyViolationError(AccessDeniedError):
    """A request falls below its collection's policy (e.g. FaceMatchThreshold under the minimum)."""


class LogIntegrityError(FaceAuditError):
    """The search log fails verification (edited, removed, reordered or truncated records)."""

    aws_code = "LogVerificationFailed"
    exit_code = 8


class AcknowledgedRecordsMissingError(LogIntegrityError):
    """Records the head file had acknowledged are missing from the log (with or without a repair
    record saying so): a crash never does this. ``faceaudit log verify`` exits 11."""

    exit_code = 11


class KeyFileError(FaceAuditError):
    """A file holding keys is unsafe (readable by others), damaged or unreadable: the access
    keys file, or the deployment's signing key (:class:`SigningKeyError`)."""

    exit_code = 6


class SigningKeyError(KeyFileError):
    """The deployment's signing key is damaged or not private."""


class IncompleteBodyError(SerializationError):
    """Fewer body bytes than Content-Length said; the connection is closed after the answer."""
