"""The HTTP service: Amazon Rekognition's face API over AWS JSON 1.1, SigV4-authenticated.

Existing boto3 code works by changing only ``endpoint_url`` and the keys::

    faceaudit keys create --json          # {"AccessKeyId": ..., "SecretAccessKey": ...}
    faceaudit serve --port 8080 --workers 2

    boto3.client("rekognition", endpoint_url="http://127.0.0.1:8080", region_name="us-east-1",
                 aws_access_key_id=..., aws_secret_access_key=...)

Layers inside (no business logic here): :mod:`._protocol` (JSON 1.1 parsing and
serialisation), :mod:`._auth` (SigV4), :mod:`._keys` (access keys),
:mod:`._limits` (body size, rate), :mod:`._validate` (the botocore model's
constraints), :mod:`._dispatch` (to :class:`faceaudit.collections.FaceCollections`
or the engine), :mod:`._app` (the pipeline), :mod:`._asgi` (the pipeline as an ASGI app: headers
checked before any body is read), :mod:`._server` (uvicorn, its worker supervisor, the limits
that hold against hostile clients).
"""

from faceaudit.service._app import DEFAULT_RATE_LIMIT, MAX_BODY_BYTES, Exchange, ServiceApp, ServiceConfig
from faceaudit.service._auth import ANONYMOUS, Principal, SigV4Verifier, canonical_request, signing_key
from faceaudit.service._dispatch import Dispatcher
from faceaudit.service._extension import Caller, ServiceExtension
from faceaudit.service._keys import DEFAULT_ROLE, KEYS_FILE, ROLES, AccessKey, KeyFileError, KeyStore
from faceaudit.service._limits import RateLimiter, body_limit
from faceaudit.service._log import JsonFormatter, configure_logging
from faceaudit.service._model import (
    COLLECTION_OPERATIONS,
    ENGINE_OPERATIONS,
    OPERATIONS,
    operation_model,
    service_model,
)
from faceaudit.service._protocol import ENGINE_TIME_HEADER, REQUEST_ID_HEADER, HttpRequest, HttpResponse
from faceaudit.service._asgi import AsgiService, BodyBudget, ServerLimits
from faceaudit.service._server import (
    GuardedH11Protocol,
    Supervisor,
    bind_socket,
    is_loopback,
    serve,
    start_in_thread,
    stop_thread_server,
    uvicorn_config,
)
from faceaudit.service._validate import check_output, parse_input

__all__ = [
    "ANONYMOUS", "AccessKey", "AsgiService", "BodyBudget", "GuardedH11Protocol", "ServerLimits",
    "Supervisor", "uvicorn_config", "COLLECTION_OPERATIONS", "Caller", "ServiceExtension", "DEFAULT_RATE_LIMIT", "DEFAULT_ROLE",
    "Dispatcher", "ENGINE_OPERATIONS", "Exchange", "ENGINE_TIME_HEADER", "HttpRequest", "HttpResponse",
    "JsonFormatter", "KEYS_FILE", "KeyFileError", "KeyStore", "MAX_BODY_BYTES", "OPERATIONS",
    "Principal", "REQUEST_ID_HEADER", "ROLES", "RateLimiter", "ServiceApp", "ServiceConfig",
    "SigV4Verifier", "bind_socket", "body_limit", "canonical_request",
    "check_output", "configure_logging", "is_loopback", "operation_model", "parse_input", "serve",
    "service_model", "signing_key", "start_in_thread", "stop_thread_server",
]
