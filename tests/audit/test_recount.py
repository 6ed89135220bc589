"""Every count of results.json, recounted from candidates.csv and the manifests alone.

An auditor who distrusts faceaudit can redo each figure with a spreadsheet: the
manifests say who is who (and which group), results.json's failures say which
photos had no usable face, and candidates.csv lists every candidate down to
``candidates_floor``, the lowest threshold any figure uses.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from faceaudit.audit import AuditConfig, LocalEngine, run_audit
from tests.audit.conftest import THRESHOLDS

UNKNOWN = "unknown"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class Recount:
    """Figures recounted from an audit folder and the manifests (found from ``base``, where the
    audit ran: results.json records manifest paths relative to it)."""

    def __init__(self, res: dict, out: Path, base: Path) -> None:
        self.res = res
        failed: set[tuple[str, str]] = {(f["manifest"], f["image"]) for f in res["failures"]}
        self.probes: list[dict[str, str]] = []
        self.gallery: list[dict[str, str]] = []
        for m in res["manifests"]:
            assert not Path(m["path"]).is_absolute()
            for r in _rows(base / m["path"]):
                r["_ok"] = (m["path"], r["image"]) not in failed
                r["_key"] = str((base / m["path"]).parent.joinpath(r["image"]).resolve())
                (self.probes if m["side"] == "probe" else self.gallery).append(r)
        assert sum(not r["_ok"] for r in self.probes + self.gallery) == len(failed)
        self.cands = _rows(out / "candidates.csv")
        for c in self.cands:  # candidates.csv paths are relative to its folder
            c["_probe"] = str((out / c["probe_image"]).resolve())
        self.gallery_subjects = {r["subject"] for r in self.gallery}
        self.enrolled = Counter(r["subject"] for r in self.gallery if r["_ok"])
        self.floor = res["candidates_floor"]
        self._at: dict[float, dict[str, list[dict[str, str]]]] = {}
        # --relabel COLUMN:OLD=NEW as the command recorded it: the label renamed on both sides
        import itertools
        import shlex

        words = shlex.split(res.get("command") or "")
        self.relabel: dict[tuple[str, str], str] = {}
        for flag, spec in itertools.pairwise(words):
            if flag == "--relabel":
                col, _, rest = spec.partition(":")
                old, _, new = rest.partition("=")
                self.relabel[(col, old)] = new
        for r in self.probes + self.gallery:
            for (col, old), new in self.relabel.items():
                if r.get(col) == old:
                    r[col] = new
        for c in self.cands:
            for (col, old), new in self.relabel.items():
                for side in ("probe", "candidate"):
                    if c.get(f"{side}_{col}") == old:
                        c[f"{side}_{col}"] = new

    def mated(self, p: dict[str, str]) -> bool:
        return p["subject"] in self.gallery_subjects

    def label(self, row: dict[str, str], column: str) -> str:
        parts = [(row.get(c) or "").strip() or UNKNOWN for c in column.split("&")]
        return UNKNOWN if UNKNOWN in parts else "&".join(parts)

    def at(self, t: float) -> dict[str, list[dict[str, str]]]:
        """The candidates at or above ``t``, by probe image."""
        assert t >= self.floor - 1e-9, f"threshold {t} below the candidates floor {self.floor}"
        if t not in self._at:
            out: dict[str, list[dict[str, str]]] = defaultdict(list)
            for c in self.cands:
                if float(c["similarity"]) >= t:
                    out[c["_probe"]].append(c)
            self._at[t] = out
        return self._at[t]

    def search_counts(self, t: float, probes: list[dict[str, str]], gallery_group=None) -> dict[str, tuple[int, int]]:
        """(errors, trials) of the four search metrics among ``probes`` (false candidates of one
        gallery group only when ``gallery_group`` = (column, group))."""
        hits = self.at(t)
        e: Counter = Counter()
        n: Counter = Counter()
        for p in probes:
            cands = hits.get(p["_key"], [])
            false = [c for c in cands if c["mated"] == "false"]
            if gallery_group is not None:
                col, g = gallery_group
                false = [c for c in false if (c.get(f"candidate_{col}") or UNKNOWN) == g]
            n["ACLU_COUNT"] += 1
            e["ACLU_COUNT"] += bool(false)
            if self.mated(p):
                n["FNIR"] += 1
                n["MATED_FALSE"] += 1
                e["FNIR"] += not any(c["mated"] == "true" for c in cands)
                e["MATED_FALSE"] += bool(false)
            else:
                n["FPIR"] += 1
                e["FPIR"] += bool(false if gallery_group is not None else cands)
        return {m: (e[m], n[m]) for m in ("ACLU_COUNT", "FNIR", "MATED_FALSE", "FPIR")}

    def pair_counts(self, t: float, probes: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
        hits = self.at(t)
        ok_gallery = sum(self.enrolled.values())
        fm = fnm = imp = gen = 0
        for p in probes:
            if not p["_ok"]:
                continue
            own = self.enrolled.get(p["subject"], 0)
            imp += ok_gallery - own
            gen += own
            cands = hits.get(p["_key"], [])
            fm += sum(c["mated"] == "false" for c in cands)
            fnm += own - sum(c["mated"] == "true" for c in cands)
        return {"FMR": (fm, imp), "FNMR": (fnm, gen)}


def check(res: dict, out: Path, base: Path) -> int:
    """Assert every recountable figure of results.json; return how many were checked."""
    rc = Recount(res, out, base)
    checked = 0

    def same(got: tuple[int, int], rec: dict, what) -> None:
        nonlocal checked
        assert (rec["errors"], rec["trials"]) == got, what
        checked += 1

    c = res["counts"]
    assert c["same_image_pairs_excluded"] == 0  # this recount does not pair image bytes
    assert c["candidates"] == len(rc.cands)
    assert (c["probes"], c["probes_failed"]) == (len(rc.probes), sum(not p["_ok"] for p in rc.probes))
    assert (c["gallery_images"], c["gallery_failed"]) == (len(rc.gallery), sum(not g["_ok"] for g in rc.gallery))
    assert c["searches_mated"] == sum(rc.mated(p) for p in rc.probes)
    assert c["searches_non_mated"] == sum(not rc.mated(p) for p in rc.probes)
    pairs = rc.pair_counts(100.0 + 1e-9, rc.probes) if rc.floor <= 100 else None
    assert pairs is not None
    assert (c["impostor_comparisons"], c["genuine_comparisons"]) == (pairs["FMR"][1], pairs["FNMR"][1])
    banded = set(res.get("bands", {}))
    for side, rows in (("probe", rc.probes), ("gallery", rc.gallery)):
        for col, groups in res["composition"][side].items():
            if set(col.split("&")) & banded:
                continue  # banded columns: the bands' edges decide the group (not recounted here)
            assert dict(Counter(rc.label(r, col) for r in rows)) == {g: k for g, k in groups.items() if k}, col
            checked += 1
    thresholds = [s["threshold"] for s in res["summaries"]]
    assert min(thresholds) >= rc.floor - 1e-9, "candidates.csv must reach the lowest figure's threshold"
    for s in res["summaries"]:
        t = s["threshold"]
        counts = {**rc.search_counts(t, rc.probes), **rc.pair_counts(t, rc.probes)}
        for metric, got in counts.items():
            same(got, s["overall"][metric], (t, metric))
    for f in res["frames"]:
        if set(f["column"].split("&")) & banded:
            continue
        t, metric = f["threshold"], f["metric"]
        for g, rec in f["by_group"].items():
            if f["side"] == "probe":
                members = [p for p in rc.probes if rc.label(p, f["column"]) == g]
                counts = {**rc.search_counts(t, members), **rc.pair_counts(t, members)}
            elif metric in ("ACLU_COUNT", "FPIR"):
                counts = rc.search_counts(t, rc.probes, gallery_group=(f["column"], g))
            else:
                continue  # FMR by gallery group: trials need per-group comparison counts
            same(counts[metric], rec, (t, metric, f["column"], g))
    for m in res["match_counts"]:
        if m["threshold"] is not None:
            same(rc.search_counts(m["threshold"], rc.probes)["ACLU_COUNT"], m["reached"], m)
    for ft in res["fmr_targets"]:
        if ft["threshold"] is not None:
            same(rc.pair_counts(ft["threshold"], rc.probes)["FMR"], ft["fmr"], ft["target"])
    for st in res["share_tests"]:
        members = [p for p in rc.probes if rc.label(p, st["column"]) in st["values"]]
        hits = rc.at(st["threshold"])
        flagged = [p for p in rc.probes if any(x["mated"] == "false" for x in hits.get(p["_key"], []))
                   and rc.label(p, st["column"]) != UNKNOWN]  # unlabelled people are left out of shares
        in_set = sum(rc.label(p, st["column"]) in st["values"] for p in flagged)
        same((in_set, len(flagged)), st["matched"], st["label"])
        same((len(members), len(rc.probes) - sum(rc.label(p, st["column"]) == UNKNOWN for p in rc.probes)),
             st["everyone"], st["label"])
    return checked


def test_every_count_of_results_json_is_recounted_from_candidates_csv_and_the_manifests(
        small_manifests, tmp_path, monkeypatch):
    # run where the manifests are, with relative paths, as a reproduction would be run
    base = small_manifests["probes"].parent
    monkeypatch.chdir(base)
    engine = LocalEngine("sface", cache=tmp_path / "embeddings.sqlite")
    config = AuditConfig(thresholds=(80.0, 90.0), bootstrap=0, match_counts=(1,))
    run = run_audit(["probes.csv"], ["gallery.csv"], engine, config, progress=False)
    out = tmp_path / "out"
    run.write(out, report=False)
    import json

    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    # the model's own point and the FMR-target thresholds lie far below 80: candidates reach them
    assert res["candidates_floor"] == min(s["threshold"] for s in res["summaries"]) < 80.0
    assert check(res, out, base) > 50


def test_results_json_holds_no_absolute_path(small_run, small_manifests):
    import json

    _run, out, _ = small_run
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["failures"], "the small audit has faceless photos"
    for f in res["failures"]:
        assert not Path(f["image"]).is_absolute() and not Path(f["manifest"]).is_absolute()
        assert f["image"] in ("blank-probe.png", "blank-gallery.png")
    text = (out / "results.json").read_text(encoding="utf-8")
    assert str(small_manifests["probes"].parent) not in text  # the manifests' folder (given absolute)


@pytest.mark.parametrize("floor", [40.0])
def test_candidates_floor_keeps_lower_candidates(small_manifests, tmp_path, floor):
    engine = LocalEngine("sface", cache=tmp_path / "embeddings.sqlite")
    config = AuditConfig(thresholds=THRESHOLDS, bootstrap=0, fmr_targets=(), candidates_floor=floor)
    run = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], engine, config, progress=False)
    assert run.result.candidates_floor == floor
    sims = run.outcomes.cand_similarity
    assert sims.min() >= floor and (sims < min(THRESHOLDS)).any()


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["sface", "dlib"])
def test_the_public_reproduction_recounts_from_its_own_outputs(model):
    import json

    folder = ROOT / "docs" / "public-audit" / model
    res = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    if not all((ROOT / m["path"]).exists() for m in res["manifests"]):
        pytest.skip("the shared data (../shared/data) is not beside this checkout")
    assert (folder / "candidates.csv").exists(), "the published candidates.csv is missing"
    assert check(res, folder, ROOT) > 1000


@pytest.mark.parametrize("bad", [-1, 100.5, float("nan"), "40", True])
def test_a_bad_candidates_floor_is_a_clear_error(bad):
    from faceaudit import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="candidates floor"):
        AuditConfig(candidates_floor=bad)
    assert AuditConfig(thresholds=(80.0,), candidates_floor=55.559).floor == 55.55  # rounded down
