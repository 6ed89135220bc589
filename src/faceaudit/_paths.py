"""Where faceaudit keeps its data. Nothing is created at import time."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def default_data_dir() -> Path:
    """The data dir of the environment's settings (``faceaudit._settings``: ``$FACEAUDIT_DATA_DIR``,
    else ``$XDG_DATA_HOME/faceaudit``, else ``~/.local/share/faceaudit``)."""
    from faceaudit._settings import environment_settings

    return environment_settings().data_dir


def default_cache_dir() -> Path:
    """The cache dir of the environment's settings (``$FACEAUDIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/faceaudit``, else ``~/.cache/faceaudit``): files faceaudit can always
    make again (nothing there is evidence or a secret)."""
    from faceaudit._settings import environment_settings

    return environment_settings().cache_dir


def resolve_data_dir(value: str | os.PathLike | None = None) -> Path:
    """The data dir given on the command line, or the default."""
    return Path(value).expanduser() if value else default_data_dir()


def private_dir(path: str | os.PathLike, *, check: bool = True) -> Path:
    """Create ``path`` (and missing parents) with mode 0700, whatever the umask; return it.

    With ``check``, an existing directory open to group or others is refused
    (:class:`UnsafePermissionsError`): a data dir holds face embeddings, face crops,
    probes and secrets, so no other local user may read or enter it.
    """
    path = Path(path)
    if not path.is_dir():
        missing = []
        p = path
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                continue
            os.chmod(d, 0o700)  # exactly 0700, whatever the umask
        return path
    if check:
        check_private_dir(path)
    return path


def check_private_dir(path: str | os.PathLike) -> None:
    """Refuse (UnsafePermissionsError) a directory that group or others may read, write or enter."""
    from faceaudit._errors import UnsafePermissionsError

    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise UnsafePermissionsError(
            f"data dir {path} has mode {mode:o}: other local users could read its faces, probes and "
            f"keys. Make it private first: chmod -R go-rwx {path}"
        )


def private_file(path: str | os.PathLike) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist (before SQLite opens it: its
    -wal and -shm files then get the same mode); return it."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path
