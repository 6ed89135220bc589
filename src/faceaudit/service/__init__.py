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

from faceaudit._errors import KeyFileError
from faceaudit.service._app import DEFAULT_RATE_LIMIT, ServiceApp, ServiceConfig

# Internals, importable for the tests (``as``: deliberately re-exported), not in __all__.
from faceaudit.service._app import MAX_BODY_BYTES as MAX_BODY_BYTES
from faceaudit.service._app import Exchange as Exchange
from faceaudit.service._asgi import AsgiService as AsgiService
from faceaudit.service._asgi import ServerLimits as ServerLimits
from faceaudit.service._auth import ANONYMOUS as ANONYMOUS
from faceaudit.service._auth import Principal as Principal
from faceaudit.service._auth import SigV4Verifier as SigV4Verifier
from faceaudit.service._auth import canonical_request as canonical_request
from faceaudit.service._auth import signing_key as signing_key
from faceaudit.service._dispatch import Dispatcher
from faceaudit.service._extension import Caller, ServiceExtension
from faceaudit.service._keys import DEFAULT_ROLE, ROLES, AccessKey, KeyStore, copy_keys
from faceaudit.service._keys import KEYS_FILE as KEYS_FILE
from faceaudit.service._limits import BodyBudget as BodyBudget
from faceaudit.service._limits import RateLimiter
from faceaudit.service._limits import body_limit as body_limit
from faceaudit.service._log import JsonFormatter, configure_logging
from faceaudit.service._model import COLLECTION_OPERATIONS as COLLECTION_OPERATIONS
from faceaudit.service._model import ENGINE_OPERATIONS as ENGINE_OPERATIONS
from faceaudit.service._model import OPERATIONS, operation_model, service_model
from faceaudit.service._protocol import ENGINE_TIME_HEADER as ENGINE_TIME_HEADER
from faceaudit.service._protocol import REQUEST_ID_HEADER, HttpRequest, HttpResponse
from faceaudit.service._server import GuardedH11Protocol as GuardedH11Protocol
from faceaudit.service._server import Supervisor as Supervisor
from faceaudit.service._server import bind_socket as bind_socket
from faceaudit.service._server import is_loopback, serve, start_in_thread, stop_thread_server
from faceaudit.service._server import uvicorn_config as uvicorn_config
from faceaudit.service._validate import check_output as check_output
from faceaudit.service._validate import parse_input as parse_input

__all__ = [
    # running a service
    "ServiceApp", "ServiceConfig", "DEFAULT_RATE_LIMIT", "RateLimiter", "serve", "start_in_thread",
    "stop_thread_server", "configure_logging", "JsonFormatter", "is_loopback", "Dispatcher",
    # access keys
    "KeyStore", "AccessKey", "copy_keys", "KeyFileError", "ROLES", "DEFAULT_ROLE",
    # extending it (the accountability layer's hook)
    "ServiceExtension", "Caller", "HttpRequest", "HttpResponse", "REQUEST_ID_HEADER",
    # the wire contract
    "OPERATIONS", "operation_model", "service_model",
]
"""What users call. The other names imported above (the server's internals: SigV4 pieces, body
budgets, the uvicorn protocol and supervisor, shape validation) stay importable for the tests
and are not part of the public surface."""
