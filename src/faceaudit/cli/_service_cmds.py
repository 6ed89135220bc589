"""``faceaudit serve``: Rekognition's face API over HTTP (AWS JSON 1.1, SigV4)."""

from __future__ import annotations

import argparse
import functools
import sys

from faceaudit._errors import InvalidParameterError
from faceaudit._settings import Settings
from faceaudit.cli._output import DATA_DIR_HELP

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve Rekognition's face API over HTTP (boto3: set endpoint_url and the keys)",
        description=(
            "Serve Amazon Rekognition's face API (AWS JSON 1.1, SigV4) so that boto3 code works by "
            "changing only endpoint_url and the keys (create them with `faceaudit keys create`). "
            "Binds to loopback unless --host says otherwise; put a TLS proxy in front for anything else."
        ),
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one, printed on start)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes sharing the socket, each threaded (default 1)")
    p.add_argument("--rate-limit", type=float, default=None, metavar="N",
                   help="requests per second per access key (default 50; 0 disables)")
    p.add_argument("--rate-burst", type=float, default=None, metavar="N",
                   help="requests a key may send at once (default: one second's worth)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds requests in flight get to finish on SIGTERM/SIGINT (default 30)")
    p.add_argument("--no-auth", action="store_true",
                   help="accept unsigned requests (local experiments only; loopback only)")
    p.add_argument("--log-level", dest="serve_log_level", default=None,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log level of the JSON-lines logs on stderr (default INFO: one line per request)")
    p.add_argument("--vector-store", default=None, choices=["local", "milvus"],
                   help="where faces are searched: local (an index in each worker, default) or milvus "
                        "(default $FACEAUDIT_VECTOR_STORE)")
    p.add_argument("--milvus-uri", default=None, metavar="URI",
                   help="Milvus server (http://host:19530) or milvus-lite file (default <data dir>/milvus.db)")
    p.add_argument("--fastscan-above", type=int, default=None, metavar="N",
                   help="collections without a faceaudit:index tag use the fast scan (approximate "
                        "candidates, exact similarities) above N faces (default: never)")
    p.add_argument("--hnsw-above", type=int, default=None, metavar="N",
                   help="collections without a faceaudit:index tag use HNSW above N faces (default: never)")
    p.add_argument("--buckets", default=None, metavar="DIR",
                   help="read S3Object images and videos from this folder: each bucket a folder, each "
                        "object a file (object versions are not supported)")
    p.add_argument("--s3-endpoint-url", default=None, metavar="URL",
                   help="read S3Object images and videos from this S3-compatible endpoint instead "
                        "(credentials: the usual AWS chain, e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    p.add_argument("--s3-region", default=None, help="region of --s3-endpoint-url (default us-east-1)")
    p.add_argument("--bucket-access", action="append", default=[], metavar="ROLE=BUCKET[,BUCKET...]",
                   help="buckets keys of ROLE may read (repeatable; '*' for all, empty for none); "
                        "default: admin and operator keys read every bucket, auditor keys none")
    p.add_argument("--video-workers", type=int, default=1, metavar="N",
                   help="threads per worker process that run stored-video jobs (default 1)")
    p.add_argument("--video-fps", type=float, default=None, metavar="N",
                   help="frames analysed per second of stored video (default 2, 0.1-30)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                   help="a TLS proxy in front (repeatable): from these addresses only, X-Forwarded-For "
                        "gives the client's address and X-Forwarded-Proto https marks cookies Secure")
    p.set_defaults(handler=cmd_serve)


def _search_config(args: argparse.Namespace, settings: Settings | None = None):
    """The SearchConfig of --vector-store/--milvus-uri/--fastscan-above/--hnsw-above over the
    settings (flags > environment > defaults); the workers get it in the app factory."""
    from pathlib import Path

    from faceaudit._settings import load_settings
    from faceaudit.collections import SearchConfig, VectorStore

    if settings is None:  # (called without the entry point's settings)
        settings = load_settings()
    milvus_uri = args.milvus_uri
    if milvus_uri is not None and "://" not in milvus_uri:
        milvus_uri = str(Path(milvus_uri).resolve())
    settings = settings.with_flags(vector_store=args.vector_store, milvus_uri=milvus_uri,
                                   hnsw_above=args.hnsw_above, fastscan_above=args.fastscan_above)
    config = SearchConfig.from_settings(settings)
    if config.vector_store is VectorStore.MILVUS:
        try:
            import pymilvus  # noqa: F401
        except ImportError:
            raise InvalidParameterError(
                "--vector-store milvus needs pymilvus: pip install 'faceaudit[milvus]'") from None
        if args.workers > 1 and "://" not in (config.milvus_uri or ""):
            raise InvalidParameterError("milvus-lite (a local file) serves one process: use --workers 1 "
                                        "or a Milvus server URI")
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    from faceaudit.cli._context import settings_of
    from faceaudit.service import DEFAULT_RATE_LIMIT, RateLimiter, ServiceConfig, configure_logging, is_loopback, serve

    level = args.serve_log_level or (args.log_level if args.log_level != "WARNING" else "INFO")
    configure_logging(level)
    if args.workers < 1:
        raise InvalidParameterError("--workers must be at least 1")
    if not 0 <= args.port <= 65535:
        raise InvalidParameterError("--port must be from 0 to 65535")
    settings = settings_of(args)  # loaded once by the entry point: flags > env > defaults
    search = _search_config(args, settings)
    if args.no_auth:
        if not is_loopback(args.host):
            raise InvalidParameterError("--no-auth serves only on loopback (127.0.0.1 or ::1)")
        print(
            "faceaudit: WARNING: authentication is OFF (--no-auth): anyone who can reach "
            f"{args.host}:{args.port} can read and change every collection. For local experiments only.",
            file=sys.stderr,
        )
    elif not is_loopback(args.host):
        print(
            f"faceaudit: note: serving on {args.host}, not loopback, over plain HTTP: requests are "
            "signed but images travel unencrypted; put a TLS-terminating proxy in front.",
            file=sys.stderr,
        )
    from faceaudit._paths import private_dir

    data_dir = settings.data_dir
    private_dir(data_dir)  # made 0700, or refused at start-up when open to other users
    objects, access, video = _object_options(args)
    video = video.replace(search_config=search, database_url=settings.postgres_url)
    config = ServiceConfig(
        data_dir=data_dir,
        auth=not args.no_auth,
        rate_limit=DEFAULT_RATE_LIMIT if args.rate_limit is None else args.rate_limit,
        rate_burst=args.rate_burst,
        objects=objects,
        bucket_access=access,
        backend_options=video,
        # the workers' settings travel in the factory (pickled), not in environment variables
        runtime=settings.runtime,
        database_url=settings.postgres_url,
    )
    # one rate limiter shared by every worker process; each worker makes its own app
    factory = functools.partial(build_app, config, RateLimiter(config.rate_limit, config.rate_burst))
    app = factory()
    if config.auth and not any(k.active for k in app.keys.list()):
        print(
            f"faceaudit: note: no active access key in {config.data_dir}: every request will be "
            f"refused; create one with `faceaudit keys create --data-dir {config.data_dir}`",
            file=sys.stderr,
        )
    return serve(app if args.workers == 1 else factory, host=args.host, port=args.port,
                 workers=args.workers, grace=args.grace, log_level=level, limits=_server_limits(args))


def _server_limits(args: argparse.Namespace):
    """The server's options from the serve flags (--trusted-proxy)."""
    import ipaddress

    from faceaudit.service import ServerLimits

    proxies = []
    for cidr in args.trusted_proxy:
        try:
            proxies.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            raise InvalidParameterError(f"--trusted-proxy {cidr!r} is not an address or network (CIDR)") from None
    return ServerLimits(trusted_proxies=tuple(proxies))


def _object_options(args: argparse.Namespace):
    """(object store or None, bucket access, backend options) from the serve options."""
    from faceaudit.collections import (
        BackendOptions,
        BucketAccess,
        FolderStore,
        ObjectStore,
        S3Store,
        check_sample_fps,
    )

    if args.buckets and args.s3_endpoint_url:
        raise InvalidParameterError("give --buckets or --s3-endpoint-url, not both")
    objects: ObjectStore | None = None
    if args.buckets:
        from pathlib import Path

        if not Path(args.buckets).is_dir():
            raise InvalidParameterError(f"--buckets {args.buckets}: no such folder")
        objects = FolderStore(args.buckets)
    elif args.s3_endpoint_url:
        objects = S3Store(args.s3_endpoint_url, region=args.s3_region)
    if args.video_workers < 1:
        raise InvalidParameterError("--video-workers must be at least 1")
    video = BackendOptions(video_workers=args.video_workers, video_sample_fps=check_sample_fps(args.video_fps))
    return objects, BucketAccess.parse(args.bucket_access), video


def build_app(config, limiter):
    """The service of ``faceaudit serve`` (made in each worker process)."""
    import dataclasses

    from faceaudit.accountability import AccountabilityExtension, TestingAPI
    from faceaudit.collections import BackendOptions
    from faceaudit.service import ServiceApp

    # accountability by construction: every identification is logged, policies and roles hold,
    # and auditor keys can test the deployed model (testing API); retention rules are applied
    # once a day (by one worker at a time, started in the worker on its first request)
    testing = TestingAPI(config.data_dir, database_url=config.database_url)
    extension = AccountabilityExtension(config.data_dir, testing=testing, daily_retention=True,
                                        database_url=config.database_url)
    # every person found by a video face search is logged before the job can succeed
    options = config.backend_options or BackendOptions()
    config = dataclasses.replace(config, backend_options=options.replace(video_observer=extension.videos.observer))
    app = ServiceApp(config, extension=extension, limiter=limiter)
    # the accountability layer reads collections (sizes, index kinds) through the service's backend
    extension.acc.use_collections(lambda: app.dispatcher.backend)
    return app
