"""Where faceaudit keeps its data. Nothing is created at import time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

ENV_DATA_DIR = "FACEAUDIT_DATA_DIR"


def default_data_dir() -> Path:
    """``$FACEAUDIT_DATA_DIR``, else ``$XDG_DATA_HOME/faceaudit``, else ``~/.local/share/faceaudit``."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "faceaudit"


def resolve_data_dir(value: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The data dir given on the command line, or the default."""
    return Path(value).expanduser() if value else default_data_dir()
