"""The audit: the ACLU's 2018 test, repeatable, with error rates per group and their uncertainty.

Public surface::

    from faceaudit.audit import AuditConfig, LocalEngine, run_audit
    run = run_audit(["probes.csv"], ["gallery.csv"], LocalEngine("sface", cache="out/embeddings.sqlite"),
                    AuditConfig(thresholds=(80, 90, 95, 99), group_by=("sex",)))
    run.result.summary(80).overall["ACLU_COUNT"]     # Rate: errors, trials, rate, intervals
    run.write("out")                                 # results.json, candidates.csv, report.html
    build_report("out")                              # report.html again from results.json
    build_comparison(["out-sface", "out-dlib"], "cmp")  # engines side by side: cmp/comparison.html

Composition test (the ACLU's "people of color were 40% of the false matches"):
``AuditConfig(shares=(ShareSpec.parse("race=black,hispanic", "people of color"),), match_counts=(28,))``.

Engines: :class:`LocalEngine` (faceaudit's models, exact scores for every pair) and
:class:`RekognitionEngine` (any Rekognition-compatible endpoint via a boto3 client).
The local engine's work runs on an executor: :class:`LocalExecutor` (worker processes on
this machine, the default) or :class:`RayExecutor` (a Ray cluster).
Metrics and formulas: ../shared/docs/metrics.md (the project's shared docs). A candidate is an
investigative lead, not an identification.
"""

from faceaudit.audit._cache import CachedEmbedding, EmbeddingCache
from faceaudit.audit._compare import COMPARISON_HTML, build_comparison, render_comparison
from faceaudit.audit._design import (
    DEFAULT_FMR_TARGETS,
    DEFAULT_THRESHOLDS,
    AuditConfig,
    AuditDesign,
    build_design,
)
from faceaudit.audit._engines import (
    REKOGNITION_DEFAULT_THRESHOLD,
    REKOGNITION_MAX_FACES,
    AuditEngine,
    LocalEngine,
    RekognitionEngine,
    external_image_id,
    make_client,
)
from faceaudit.audit._executors import AuditExecutor, LocalExecutor, RayExecutor
from faceaudit.audit._groups import UNKNOWN, GroupColumn, ShareSpec, parse_bands, parse_relabel
from faceaudit.audit._manifest import ImageRecord, Manifest, read_manifest, read_manifests
from faceaudit.audit._metrics import differential
from faceaudit.audit._report import ThumbnailPolicy, build_report, render_report
from faceaudit.audit._results import (
    METRICS,
    AuditCounts,
    AuditResult,
    CrossTable,
    Curves,
    Differential,
    EngineInfo,
    Failure,
    FMRTarget,
    ManifestInfo,
    MatchCountPoint,
    MetricByGroup,
    Projection,
    PromiseCheck,
    PromiseGap,
    Rate,
    ShareTest,
    ThresholdMetrics,
    ThresholdSummary,
    WarningGroup,
)
from faceaudit.audit._run import (
    CANDIDATES_CSV,
    REPORT_HTML,
    RESULTS_JSON,
    AuditRun,
    run_audit,
)
from faceaudit.audit._scoring import (
    SearchOutcomes,
    outcomes_from_candidates,
    score_exact,
)

__all__ = [
    "COMPARISON_HTML", "MatchCountPoint", "MetricByGroup", "PromiseCheck", "PromiseGap", "ShareSpec", "ShareTest",
    "WarningGroup",
    "build_comparison", "render_comparison",
    "AuditConfig", "AuditCounts", "AuditDesign", "AuditEngine", "AuditExecutor", "AuditResult", "AuditRun",
    "CANDIDATES_CSV",
    "CachedEmbedding", "CrossTable", "Curves", "DEFAULT_FMR_TARGETS", "DEFAULT_THRESHOLDS", "Differential",
    "EmbeddingCache", "EngineInfo", "FMRTarget", "Failure", "GroupColumn", "ImageRecord", "LocalEngine",
    "LocalExecutor",
    "METRICS", "Manifest", "ManifestInfo", "ThresholdMetrics", "Projection", "REKOGNITION_DEFAULT_THRESHOLD",
    "REKOGNITION_MAX_FACES", "REPORT_HTML", "RESULTS_JSON", "Rate", "RayExecutor", "RekognitionEngine",
    "SearchOutcomes",
    "ThresholdSummary", "ThumbnailPolicy", "UNKNOWN", "build_design", "build_report", "differential",
    "external_image_id", "make_client", "outcomes_from_candidates", "parse_bands", "parse_relabel", "read_manifest",
    "read_manifests", "render_report", "run_audit", "score_exact",
]
