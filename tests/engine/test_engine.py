import numpy as np
import pytest

from faceaudit import InvalidParameterError, NoFaceError
from faceaudit.engine import LANDMARK_TYPES, get_model
from tests.conftest import MEMBERS, blank_image, meds, portrait_2014, portrait_2018, side_by_side


def test_detect_one_face_with_rekognition_fields(any_engine):
    result = any_engine.detect(portrait_2018("B000944"))
    assert len(result.faces) == 1
    face = result.faces[0]
    box = face.bounding_box
    # a head-and-shoulders portrait: the face sits in the upper middle of the frame
    assert 0.15 < box.left < 0.45 and 0.0 < box.top < 0.4
    assert 0.25 < box.width < 0.75 and 0.25 < box.height < 0.75
    assert 50 <= face.confidence <= 100
    assert [lm.type for lm in face.landmarks] == list(LANDMARK_TYPES)
    eye_l, eye_r = face.landmarks[0], face.landmarks[1]
    assert eye_l.x < eye_r.x  # viewer's left first
    for lm in face.landmarks:  # every landmark inside the box
        assert box.left - 0.02 <= lm.x <= box.left + box.width + 0.02
        assert box.top - 0.05 <= lm.y <= box.top + box.height + 0.05
    assert abs(face.pose.roll) < 15 and abs(face.pose.yaw) < 30
    assert 0 < face.quality.brightness <= 100 and 0 < face.quality.sharpness <= 100
    rk = result.to_rekognition()
    assert set(rk) == {"FaceDetails"}
    assert set(rk["FaceDetails"][0]) == {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}


def test_box_ratios_follow_the_image(sface_engine):
    """Boxes are ratios: the same face in a canvas twice as wide has half the width ratio."""
    single = sface_engine.detect(portrait_2018("C000127")).faces[0].bounding_box
    double = sface_engine.detect(side_by_side(portrait_2018("C000127"), portrait_2018("C000127")))
    assert len(double.faces) == 2
    boxes = sorted((f.bounding_box for f in double.faces), key=lambda b: b.left)
    assert boxes[0].width == pytest.approx(single.width / 2, rel=0.1)
    assert boxes[0].left == pytest.approx(single.left / 2, abs=0.02)
    assert boxes[1].left == pytest.approx(0.5 + single.left / 2, abs=0.02)
    assert boxes[0].top == pytest.approx(single.top, abs=0.02)


def test_large_image_downscaled_boxes_mapped_back(sface_engine):
    import io

    from PIL import Image

    pil = Image.open(portrait_2018("K000367")).convert("RGB")
    big = pil.resize((pil.width * 10, pil.height * 10))  # 1800x2250, detection downscales
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=80)
    small_box = sface_engine.detect(portrait_2018("K000367")).faces[0].bounding_box
    big_face = sface_engine.detect(buf.getvalue()).faces[0]
    assert big_face.bounding_box.left == pytest.approx(small_box.left, abs=0.02)
    assert big_face.bounding_box.width == pytest.approx(small_box.width, abs=0.03)
    assert big_face.box_px[2] > 500  # in pixels of the original image


def test_same_member_scores_above_the_model_threshold_and_strangers_below_80(any_engine):
    spec = any_engine.spec
    own = spec.recommended_similarity  # the model authors' operating point, on the calibrated scale
    for bioguide in MEMBERS:
        result = any_engine.compare(portrait_2018(bioguide), portrait_2014(bioguide), own)
        assert len(result.matches) == 1, bioguide
        assert result.matches[0].similarity >= own
        if spec.name == "sface":  # the default model finds all eight at the default threshold too
            assert result.matches[0].similarity >= 80, bioguide
    for a, b in zip(MEMBERS, MEMBERS[1:] + MEMBERS[:1], strict=True):
        result = any_engine.compare(portrait_2018(a), portrait_2014(b))
        assert not result.matches, (a, b, spec.name)
        assert result.unmatched[0].similarity < 80


def test_same_person_more_similar_than_different(any_engine):
    _, a = any_engine.largest(meds("S001-01-t10_01"))
    _, b = any_engine.largest(meds("S001-02-t10_01"))
    _, c = any_engine.largest(meds("S006-01-t10_01"))
    assert any_engine.similarity(a.vector, b.vector) > any_engine.similarity(a.vector, c.vector)
    assert np.linalg.norm(a.vector) == pytest.approx(1.0, abs=1e-4)


def test_compare_finds_the_right_face_among_several(sface_engine):
    target = side_by_side(portrait_2018("C000141"), portrait_2014("B000944"), portrait_2018("F000062"))
    result = sface_engine.compare(portrait_2018("B000944"), target)
    assert len(result.matches) == 1 and len(result.unmatched) == 2
    assert 0.3 < result.matches[0].face.bounding_box.left < 0.66
    rk = result.to_rekognition()
    assert set(rk) == {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}
    assert set(rk["FaceMatches"][0]) == {"Similarity", "Face"}
    assert "Similarity" not in rk["UnmatchedFaces"][0]


def test_compare_threshold_zero_matches_everything(sface_engine):
    target = side_by_side(portrait_2018("C000141"), portrait_2018("F000062"))
    result = sface_engine.compare(portrait_2018("B000944"), target, similarity_threshold=0)
    sims = [m.similarity for m in result.matches]
    assert len(sims) == 2 and sims == sorted(sims, reverse=True)


def test_no_face_in_source(sface_engine):
    with pytest.raises(NoFaceError):
        sface_engine.compare(blank_image(), portrait_2018("B000944"))


def test_no_face_in_target_is_empty(sface_engine):
    result = sface_engine.compare(portrait_2018("B000944"), blank_image())
    assert result.matches == () and result.unmatched == ()


@pytest.mark.parametrize("threshold", [-1, 100.5, float("nan"), "80"])
def test_threshold_out_of_range(sface_engine, threshold):
    with pytest.raises(InvalidParameterError):
        sface_engine.compare(portrait_2018("B000944"), portrait_2014("B000944"), threshold)


def test_similarity_scale_is_monotone_and_continuous():
    for name in ("sface", "dlib"):
        scale = get_model(name).scale
        cos = np.linspace(-1, 1, 20001)
        sims = scale.to_similarity_array(cos)
        assert np.all(np.diff(sims) >= 0) and sims[0] == 0.0
        # continuous: no jump larger than the steepest knot segment allows on this grid
        knots_c, knots_s = np.array(scale.cosines), np.array(scale.similarities)
        steepest = np.max(np.diff(knots_s) / np.diff(knots_c))
        assert np.max(np.diff(sims)) <= steepest * (cos[1] - cos[0]) + 1e-9
        # strictly increasing below 100, and the inverse round-trips
        for s in (30.0, 50.0, 80.0, 90.0, 95.0, 99.0):
            assert scale.to_similarity(scale.to_cosine(s)) == pytest.approx(s, abs=1e-6)
        assert scale.to_similarity(scale.to_cosine(80.0) + 1e-4) > 80.0


def test_compare_keep_filters_faces_out_of_the_comparison(sface_engine):
    target = side_by_side(portrait_2018("C000141"), portrait_2014("B000944"), portrait_2018("F000062"))
    # the source portrait's face is wide; of the target's three narrow faces only the first third's
    left_only = lambda f: f.bounding_box.width > 0.3 or f.bounding_box.left < 0.3  # noqa: E731
    result = sface_engine.compare(portrait_2018("B000944"), target, similarity_threshold=0, keep=left_only)
    assert len(result.matches) == 1 and result.unmatched == ()  # filtered faces are not compared
    assert result.matches[0].face.bounding_box.left < 0.3
    with pytest.raises(NoFaceError, match="QualityFilter"):
        sface_engine.compare(portrait_2018("B000944"), target, keep=lambda f: False)
