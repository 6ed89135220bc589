"""Fixtures of the audit tests: small manifests over the committed photos, one real audit."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import MEMBERS, MEMBERS_F, blank_image, meds, portrait_2014, portrait_2018

MATED = ["B000944", "C000127", "C000141", "C000174", "F000062", "K000367"]
"""Members whose 2014 portrait is in the small gallery (mated searches)."""

THRESHOLDS = (50.0, 60.0, 80.0, 90.0)


def write_manifest(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})
    return path


def sex(bioguide: str) -> str:
    return "F" if bioguide in MEMBERS_F else "M"


@pytest.fixture(scope="session")
def small_manifests(tmp_path_factory) -> dict[str, Path]:
    """8 portraits + 1 faceless probe against 6 mates, 4 MEDS photos and 1 faceless image.

    Paths are absolute (a manifest's paths may be absolute or relative to it).
    """
    d = tmp_path_factory.mktemp("manifests")
    (d / "blank-probe.png").write_bytes(blank_image(220, 220))
    (d / "blank-gallery.png").write_bytes(blank_image(240, 200))
    probes: list[dict[str, str]] = [
        {"image": str(portrait_2018(b)), "subject": f"congress:{b}", "sex": sex(b), "dataset": "congress2018"}
        for b in MEMBERS
    ]
    probes.append({"image": "blank-probe.png", "subject": "nobody:1", "sex": "", "dataset": "synthetic"})
    gallery: list[dict[str, str]] = [
        {"image": str(portrait_2014(b)), "subject": f"congress:{b}", "sex": sex(b), "dataset": "congress2014"}
        for b in MATED
    ]
    gallery += [
        {"image": str(meds("S001-01-t10_01")), "subject": "meds:S001", "sex": "F", "dataset": "meds"},
        {"image": str(meds("S001-02-t10_01")), "subject": "meds:S001", "sex": "F", "dataset": "meds"},
        {"image": str(meds("S006-01-t10_01")), "subject": "meds:S006", "sex": "", "dataset": "meds"},
        {"image": str(meds("S006-02-t10_01")), "subject": "meds:S006", "sex": "", "dataset": "meds"},
        {"image": "blank-gallery.png", "subject": "nobody:2", "sex": "M", "dataset": "synthetic"},
    ]
    cols = ["image", "subject", "dataset", "sex"]
    return {
        "probes": write_manifest(d / "probes.csv", probes, cols),
        "gallery": write_manifest(d / "gallery.csv", gallery, cols),
    }


@pytest.fixture(scope="session")
def small_run(small_manifests, tmp_path_factory):
    """One real audit (sface, local engine) of the small manifests, written to a folder."""
    from faceaudit.audit import AuditConfig, LocalEngine, run_audit

    out = tmp_path_factory.mktemp("audit-out")
    engine = LocalEngine("sface", cache=out / "embeddings.sqlite")
    run = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], engine,
                    AuditConfig(thresholds=THRESHOLDS, bootstrap=200, seed=7), progress=False)
    run.write(out)
    return run, out, engine
