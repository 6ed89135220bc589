"""The one place the CLI builds its stores from the settings (``args.settings``).

Every command opens collections, the accountability layer, access keys, video searches and
retention through these functions, so a setting (the data dir, ``--database``, the search
configuration) reaches every store the same way. The entry point loads the settings once
(:func:`faceaudit._settings.load_settings`: flags > environment > defaults) and puts them on
``args.settings``; :func:`settings_of` loads them from the parsed flags when a command is
called without the entry point (a test calling a handler directly).

Where the stores live: ``settings.postgres_url`` (a ``postgresql://`` URL) is passed as
``database_url`` to each store whose constructor takes it; without one each store keeps its
SQLite file in the data dir.
"""

from __future__ import annotations

import argparse
import functools
from typing import TYPE_CHECKING, Any

from faceaudit._settings import Settings, load_settings

if TYPE_CHECKING:
    from faceaudit.accountability import Accountability, Retention, VideoSearches
    from faceaudit.collections import FaceCollections
    from faceaudit.engine import FaceEngine
    from faceaudit.service import KeyStore

__all__ = ["accountability", "collections", "engine", "keys", "retention", "settings_of", "video_searches"]


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this command: ``args.settings`` (loaded once by the entry point), else
    loaded now from the command's flags (``--data-dir``, ``--database``) over the environment."""
    settings = getattr(args, "settings", None)
    if settings is None:
        settings = args.settings = load_settings(data_dir=getattr(args, "data_dir", None),
                                                 database_url=getattr(args, "database", None))
    return settings


def engine(args: argparse.Namespace, model: str | None = None) -> FaceEngine:
    """A face engine of ``model`` (default: the default model) on the settings' runtime (loaded
    on first use)."""
    from faceaudit.engine import DEFAULT_MODEL, FaceEngine

    return FaceEngine(model or DEFAULT_MODEL, settings_of(args).runtime)


def collections(args: argparse.Namespace, **options: Any) -> FaceCollections:
    """The data dir's collections with the settings' search configuration (vector store, index
    thresholds) and runtime; ``options`` are further :class:`FaceCollections` keywords.
    One object per command: a second call returns the first."""
    cached = getattr(args, "_collections", None)
    if cached is not None and not options:
        return cached
    from faceaudit.collections import FaceCollections, SearchConfig

    settings = settings_of(args)
    default = engine(args)
    keywords: dict[str, Any] = {"engines": {default.spec.name: default}, **options}
    fc = FaceCollections(
        settings.data_dir, search_config=SearchConfig.from_settings(settings),
        database_url=settings.postgres_url,
        **keywords)
    if not options:
        args._collections = fc
    return fc


def accountability(args: argparse.Namespace, *, fc: FaceCollections | None = None) -> Accountability:
    """The search log, policies and review queue (``database_url``: the settings' PostgreSQL URL).

    The accountability layer reads collections (sizes, index kinds, face crops) through ``fc``,
    else through :func:`collections`, opened only when it needs them."""
    from faceaudit.accountability import Accountability

    settings = settings_of(args)
    acc = Accountability(settings.data_dir, database_url=settings.postgres_url)
    acc.use_collections((lambda: fc) if fc is not None else functools.partial(collections, args))
    return acc


def keys(args: argparse.Namespace) -> KeyStore:
    """The access keys."""
    from faceaudit.service import KeyStore

    return KeyStore(settings_of(args).data_dir, database_url=settings_of(args).postgres_url)


def video_searches(args: argparse.Namespace, *, fc: FaceCollections | None = None) -> VideoSearches:
    """Policy, warrant check and logging of video face searches."""
    from faceaudit.accountability import VideoSearches

    return VideoSearches(accountability(args, fc=fc))


def retention(args: argparse.Namespace) -> Retention:
    """The retention rules and their runner."""
    from faceaudit.accountability import Retention

    return Retention(accountability(args))
