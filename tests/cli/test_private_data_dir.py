"""Finding 6: a data dir first made by a collection command was 0755 with a 0644 database."""

import os
import stat

from tests.conftest import portrait_2014
from tests.service.conftest import cli


def _modes(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def test_any_command_makes_the_data_dir_private(tmp_path):
    old = os.umask(0o022)  # a usual umask: what made the dir 0755 and the database 0644
    try:
        for first in (["collection", "create", "c"], ["policy", "set-default", "--min-threshold", "99"],
                      ["keys", "create", "--person", "P"]):
            data = tmp_path / first[0] / "data"
            cli(*first, "--data-dir", str(data))
            cli("index", "c", str(portrait_2014("C000141")), "--data-dir", str(data), check=False)
            assert stat.S_IMODE(os.stat(data).st_mode) == 0o700, first
            modes = _modes(data)
            assert modes and all(m & 0o077 == 0 for m in modes.values()), (first, modes)
    finally:
        os.umask(old)


def test_a_data_dir_open_to_others_is_refused_with_a_clear_error(tmp_path):
    data = tmp_path / "data"
    cli("collection", "create", "c", "--data-dir", str(data))
    os.chmod(data, 0o755)
    for argv in (["collection", "list"], ["serve", "--port", "0"], ["log", "verify"]):
        out = cli(*argv, "--data-dir", str(data), check=False)
        assert out.returncode == 6 and "chmod -R go-rwx" in out.stderr, (argv, out.stderr)


def test_every_store_in_the_data_dir_is_private(tmp_path):
    """Issue 23: video-jobs.sqlite3 was 0644 and milvus.db 0755 inside the 0700 data dir. A session
    that makes each store (collections, search log, probes, keys, video jobs, milvus-lite) under a
    usual umask leaves no file or folder that group or others may use."""
    import pytest

    pytest.importorskip("milvus_lite")
    from faceaudit.collections._jobs import JobStore

    data = tmp_path / "data"
    env = {"FACEAUDIT_VECTOR_STORE": "milvus"}
    old = os.umask(0o022)
    try:
        cli("collection", "create", "c", "--data-dir", str(data), env=env)
        cli("index", "c", str(portrait_2014("C000141")), "--data-dir", str(data), env=env)
        cli("search", "c", str(portrait_2014("C000141")), "--data-dir", str(data), env=env)
        cli("keys", "create", "--person", "P", "--data-dir", str(data))
        JobStore(data).submit("face-detection", {"video": {"S3Object": {"Bucket": "b", "Name": "v.mp4"}}},
                              None, None, {})
    finally:
        os.umask(old)
    modes = _modes(data)
    assert {"collections.sqlite3", "video-jobs.sqlite3", "milvus.db", "search-log.jsonl"} <= set(modes)
    assert any(p.startswith("milvus.db" + os.sep) for p in modes)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert {p: oct(m) for p, m in modes.items() if m & 0o077} == {}
