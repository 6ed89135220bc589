"""faceaudit._settings: one typed Settings object, flags > environment > defaults, the only
reader of FACEAUDIT_* variables."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from faceaudit import InvalidParameterError
from faceaudit._settings import (
    ENVIRONMENT,
    RUNTIMES,
    VECTOR_STORES,
    Settings,
    load_settings,
    redact_url,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "faceaudit"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_environment_and_flags_in_that_order(tmp_path):
    home = Path.home()
    s = load_settings({})
    assert s.data_dir == home / ".local" / "share" / "faceaudit"
    assert s.cache_dir == home / ".cache" / "faceaudit"
    assert (s.runtime, s.vector_store, s.milvus_uri, s.fastscan_above, s.hnsw_above) == (
        "auto", "local", None, None, None)
    s = load_settings({"XDG_DATA_HOME": str(tmp_path / "x"), "XDG_CACHE_HOME": str(tmp_path / "c")})
    assert (s.data_dir, s.cache_dir) == (tmp_path / "x" / "faceaudit", tmp_path / "c" / "faceaudit")
    env = {"FACEAUDIT_DATA_DIR": str(tmp_path / "d"), "FACEAUDIT_CACHE_DIR": str(tmp_path / "k"),
           "FACEAUDIT_RUNTIME": "OpenVINO", "FACEAUDIT_VECTOR_STORE": "milvus",
           "FACEAUDIT_MILVUS_URI": "http://m:19530", "FACEAUDIT_FASTSCAN_ABOVE": "100",
           "FACEAUDIT_HNSW_ABOVE": "1000", "FACEAUDIT_SECRET_ACCESS_KEY": "s3cr3t"}
    s = load_settings(env)
    assert s == Settings(tmp_path / "d", tmp_path / "k", "openvino", "milvus", "http://m:19530", 100, 1000,
                         "s3cr3t")
    assert "s3cr3t" not in repr(s)
    flagged = load_settings(env, data_dir=tmp_path / "flag", fastscan_above=5, hnsw_above=None)
    assert (flagged.data_dir, flagged.fastscan_above, flagged.hnsw_above) == (tmp_path / "flag", 5, 1000)
    assert pickle.loads(pickle.dumps(s)) == s  # travels to worker processes


@pytest.mark.parametrize("env", [
    {"FACEAUDIT_RUNTIME": "tensorrt"}, {"FACEAUDIT_VECTOR_STORE": "redis"},
    {"FACEAUDIT_FASTSCAN_ABOVE": "many"}, {"FACEAUDIT_HNSW_ABOVE": "-1"},
])
def test_a_malformed_variable_is_a_typed_error_naming_it(env):
    with pytest.raises(InvalidParameterError, match=next(iter(env))):
        load_settings(env)


def test_an_unknown_flag_is_an_error():
    with pytest.raises(InvalidParameterError, match="hnsw_abov"):
        load_settings({}, hnsw_abov=3)


def test_the_names_agree_with_the_enums():
    from faceaudit.collections import VectorStore
    from faceaudit.engine._sface import Runtime

    assert tuple(r.value for r in Runtime) == RUNTIMES
    assert tuple(v.value for v in VectorStore) == VECTOR_STORES


def test_no_other_module_reads_faceaudit_variables():
    """Only _settings.py reads FACEAUDIT_* (docstrings and help texts may name them)."""
    reads = re.compile(r"""(environ|getenv)\s*(\.get\s*)?[\(\[]\s*["']FACEAUDIT_""")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "_settings.py" and reads.search(p.read_text())]
    assert offenders == []
    assert "os.environ.update" not in (SRC / "cli" / "_service_cmds.py").read_text()


def test_every_variable_is_documented_in_the_readme():
    text = README.read_text()
    assert [name for name in ENVIRONMENT if name not in text] == []


def test_readme_lists_every_exit_code():
    """Every exit code a FaceAuditError can give (and 1 and 130 of the entry point) has a row."""
    import faceaudit._errors as errors

    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.FaceAuditError)} | {1, 130}
    rows = set(int(m) for m in re.findall(r"^\| (\d+) \|", README.read_text(), re.M))
    assert codes <= rows, sorted(codes - rows)


PG = "postgresql://faceaudit:s3cr3t-pw@db.example:5432/faceaudit"


def test_database_url_flag_over_environment_over_default(tmp_path):
    assert load_settings({}).database_url is None and load_settings({}).postgres_url is None
    env = {"FACEAUDIT_DATABASE_URL": PG}
    assert load_settings(env).postgres_url == PG
    other = "postgres://h/other"
    assert load_settings(env, database_url=other).database_url == other
    assert load_settings(env, database_url=None).database_url == PG  # a flag not given changes nothing
    # sqlite:///DATA_DIR is the default spelled out: each store's SQLite file in the data dir
    data = tmp_path / "d"
    s = load_settings({"FACEAUDIT_DATABASE_URL": f"sqlite:///{data}"}, data_dir=data)
    assert s.database_url == f"sqlite:///{data}" and s.postgres_url is None
    assert s.database_shown == f"SQLite files in {data}"
    s = load_settings({"FACEAUDIT_DATABASE_URL": ""})
    assert s.database_url is None
    assert pickle.loads(pickle.dumps(load_settings(env))).postgres_url == PG  # travels to workers


def test_the_database_password_is_never_shown():
    s = load_settings({"FACEAUDIT_DATABASE_URL": PG})
    assert "s3cr3t-pw" not in repr(s) and "s3cr3t-pw" not in str(s)
    assert s.database_shown == "postgresql://faceaudit@db.example:5432/faceaudit"
    assert "s3cr3t-pw" not in redact_url("postgresql://h/db?user=u&password=s3cr3t-pw")
    with pytest.raises(InvalidParameterError) as bad:
        load_settings({"FACEAUDIT_DATABASE_URL": "mysql://root:s3cr3t-pw@h/db"})
    assert "s3cr3t-pw" not in str(bad.value) and "FACEAUDIT_DATABASE_URL" in str(bad.value)


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://", "sqlite:///", "h:5432/db", "file:///x"])
def test_a_bad_database_url_is_a_typed_error(url):
    with pytest.raises(InvalidParameterError, match="database URL"):
        load_settings({"FACEAUDIT_DATABASE_URL": url})


def test_a_sqlite_url_must_name_the_data_dir(tmp_path):
    with pytest.raises(InvalidParameterError, match="data dir"):
        load_settings({"FACEAUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere'}"}, data_dir=tmp_path / "d")
    # the flag settles it whatever the environment's data dir was
    s = load_settings({"FACEAUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'd'}"}, data_dir=tmp_path / "d")
    assert s.data_dir == tmp_path / "d"
