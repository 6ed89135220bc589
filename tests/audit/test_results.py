"""AuditResult's views of its per-threshold records."""

from __future__ import annotations

import pytest

from faceaudit.audit import MetricByGroup


def test_by_group_gathers_every_threshold_of_one_metric(small_run):
    res = small_run[0].result
    view = res.by_group("FMR", "sex")
    assert isinstance(view, MetricByGroup)
    assert view.thresholds == tuple(sorted(s.threshold for s in res.summaries))
    for k, t in enumerate(view.thresholds):
        rec = res.frame("FMR", "sex", t)
        assert view.overall[k] == rec.overall == res.summary(t).overall["FMR"]
        assert {g: rates[k] for g, rates in view.by_group.items()} == dict(rec.by_group)
        assert (view.difference[k], view.ratio[k]) == (rec.difference, rec.ratio)
    gallery = res.by_group("FPIR", "dataset", side="gallery")
    assert gallery.side == "gallery" and set(gallery.by_group) == set(res.gallery_groups["dataset"])
    with pytest.raises(KeyError):
        res.by_group("FMR", "no such column")
