"""Search outcomes: what the metrics are computed from.

Two ways to get them, one result type (:class:`SearchOutcomes`):

* :func:`score_exact` - every probe against every gallery face, exact scores,
  streamed in blocks of probes (never the whole score matrix in memory; no
  approximate index). Counts at each threshold are kept per probe and per gallery
  group; fine score histograms (0.01 Similarity steps) per probe group.
* :func:`outcomes_from_candidates` - from candidate lists at or above the lowest
  threshold (what a Rekognition-compatible search returns). Counts at thresholds
  at or above that floor are exact; nothing below it is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceaudit._progress import Progress
from faceaudit.audit._design import AuditDesign
from faceaudit.audit._groups import GroupColumn

BIN_WIDTH = 0.01
"""Width of the score histogram bins, in Similarity points."""

N_BINS = 10001
"""Bins 0.00, 0.01, ..., 100.00: bin b holds similarities in [b/100, (b+1)/100)."""

OVERALL = ""
"""Key of the whole-population histogram in :attr:`SearchOutcomes.hist_genuine`."""


def similarity_bins(sim: np.ndarray) -> np.ndarray:
    """Histogram bin of each similarity (0-100, rounded to 4 decimals)."""
    return np.clip(np.floor(sim * 100.0 + 1e-6).astype(np.int64), 0, N_BINS - 1)


def threshold_bin(threshold: float) -> int:
    """First bin at or above a threshold (exact for thresholds on the 0.01 grid)."""
    return int(min(N_BINS - 1, max(0, math.ceil(threshold * 100.0 - 1e-6))))


@dataclass(frozen=True, eq=False)
class SearchOutcomes:
    """Per-probe results of searching every probe against the gallery.

    Similarity is 0-100, higher is more alike. ``floor``: every candidate
    (``cand_*``) at or above it is kept. ``thresholds`` are ascending;
    ``*_ge[i, k]`` counts the comparisons of probe ``i`` scoring >= ``thresholds[k]``,
    ``*_n[i]`` all of them (genuine: same subject; impostor: another subject;
    pairs of byte-identical images are left out). ``best_mate`` / ``best_nonmate``
    is the highest genuine / impostor similarity of a probe, NaN when there is none
    (or, if not ``exact``, when none reached ``floor``). Failed probes (no face)
    have no comparisons: they return no candidates.
    """

    exact: bool
    floor: float
    thresholds: np.ndarray
    probe_ok: np.ndarray
    gallery_ok: np.ndarray
    probe_reason: tuple[str | None, ...]
    gallery_reason: tuple[str | None, ...]
    best_mate: np.ndarray
    best_nonmate: np.ndarray
    best_nonmate_gallery: dict[str, np.ndarray]
    imp_ge: np.ndarray
    imp_n: np.ndarray
    gen_ge: np.ndarray
    gen_n: np.ndarray
    imp_ge_gallery: dict[str, np.ndarray]
    imp_n_gallery: dict[str, np.ndarray]
    cand_probe: np.ndarray
    cand_gallery: np.ndarray
    cand_similarity: np.ndarray
    truncated: np.ndarray
    same_image_pairs: int = 0
    hist_genuine: dict[str, np.ndarray] | None = None
    hist_impostor: dict[str, np.ndarray] | None = None
    fmr_target_thresholds: dict[float, float | None] = field(default_factory=dict)
    match_count_thresholds: dict[int, float | None] = field(default_factory=dict)

    def threshold_index(self, t: float) -> int:
        hits = np.nonzero(np.isclose(self.thresholds, t, atol=1e-9))[0]
        if not hits.size:
            raise KeyError(t)
        return int(hits[0])


@dataclass(frozen=True, eq=False)
class ErrorCounts:
    """One metric's errors and trials per probe (search): what every rate is summed from.

    ``errors[i, k]``: errors of probe ``i`` at threshold ``k`` (0/1 for search
    metrics, comparison counts for pair metrics); ``trials[i]``: its trials (the
    same at every threshold). The rate over probes ``S`` at threshold ``k`` is
    ``errors[S, k].sum() / trials[S].sum()``.
    """

    errors: np.ndarray
    trials: np.ndarray


def vectorised_similarity(scale) -> Callable[[np.ndarray], np.ndarray]:
    """Array version of ``scale.to_similarity`` (same arithmetic), rounded to 4 decimals."""

    def f(cos: np.ndarray) -> np.ndarray:
        return np.round(scale.to_similarity_array(cos), 4)

    return f


def _sha_codes(probe_sha: Sequence[str | None], gallery_sha: Sequence[str | None]):
    index: dict[str, int] = {}
    def code(s, fallback):
        if not s:
            return fallback
        return index.setdefault(s, len(index))
    p = np.array([code(s, -1 - i) for i, s in enumerate(probe_sha)], dtype=np.int64)
    g = np.array([code(s, -(10**9) - i) for i, s in enumerate(gallery_sha)], dtype=np.int64)
    return p, g


def _fmr_target_thresholds(hist: np.ndarray, targets: Sequence[float]) -> dict[float, float | None]:
    """Lowest threshold on the 0.01 grid whose FMR (from the histogram) is at most each target."""
    total = int(hist.sum())
    out: dict[float, float | None] = {}
    if total == 0:
        return {float(t): None for t in targets}
    tail = np.cumsum(hist[::-1])[::-1] / total  # tail[b] = FMR at threshold b/100
    for t in targets:
        ok = np.nonzero(tail <= t)[0]
        out[float(t)] = round(int(ok[0]) * BIN_WIDTH, 2) if ok.size else None
    return out


def match_count_thresholds(best_false: np.ndarray, counts: Sequence[int], floor: float = 0.0
                           ) -> dict[int, float | None]:
    """Lowest threshold (0.01 grid, >= ``floor``) at which at most N searches have a false candidate.

    ``best_false[i]``: the highest similarity of a candidate who is somebody else
    in search i (NaN: none, or none seen at or above ``floor``). A search has a
    false candidate at t when ``best_false >= t``; the count falls as t rises, so
    the threshold is one step above the (N+1)-th highest value; with ties the
    count there may be below N (the caller reports the count reached).
    """
    b = np.sort(np.asarray(best_false, np.float64)[np.isfinite(best_false)])[::-1]
    out: dict[int, float | None] = {}
    for n in counts:
        if len(b) <= n:
            out[int(n)] = round(float(floor), 2)
            continue
        t = (int(similarity_bins(b[n:n + 1])[0]) + 1) * BIN_WIDTH
        out[int(n)] = round(min(100.0, max(float(floor), t)), 2)
    return out


class _Accumulator:
    """Every count of every probe, filled block by block (:meth:`add`)."""

    def __init__(self, design: AuditDesign, thresholds: np.ndarray, hist_columns: bool):
        P = design.n_probes
        T = len(thresholds)
        self.T = T
        self.thresholds = thresholds
        self.best_mate = np.full(P, np.nan)
        self.best_nonmate = np.full(P, np.nan)
        self.imp_ge = np.zeros((P, T), np.int64)
        self.gen_ge = np.zeros((P, T), np.int64)
        self.imp_n = np.zeros(P, np.int64)
        self.gen_n = np.zeros(P, np.int64)
        self.best_g = {c.name: np.full((P, len(c.groups)), np.nan) for c in design.gallery_columns}
        self.imp_ge_g = {c.name: np.zeros((P, len(c.groups), T), np.int64) for c in design.gallery_columns}
        self.imp_n_g = {c.name: np.zeros((P, len(c.groups)), np.int64) for c in design.gallery_columns}
        self.hist_gen: dict[str, np.ndarray] | None = None
        self.hist_imp: dict[str, np.ndarray] | None = None
        if hist_columns:
            self.hist_gen = {OVERALL: np.zeros((1, N_BINS), np.int64)}
            self.hist_imp = {OVERALL: np.zeros((1, N_BINS), np.int64)}
            for c in design.probe_columns:
                self.hist_gen[c.name] = np.zeros((len(c.groups), N_BINS), np.int64)
                self.hist_imp[c.name] = np.zeros((len(c.groups), N_BINS), np.int64)
        self.cand_p: list[np.ndarray] = []
        self.cand_g: list[np.ndarray] = []
        self.cand_s: list[np.ndarray] = []
        self.same_pairs = 0

    def add(self, b: BlockCounts) -> None:
        """Store the counts of one block of probe rows (each row is written once; histograms add up)."""
        rows = b.rows
        self.same_pairs += b.same_pairs
        self.imp_ge[rows] = b.imp_ge
        self.gen_ge[rows] = b.gen_ge
        self.imp_n[rows] = b.imp_n
        self.gen_n[rows] = b.gen_n
        self.best_mate[rows] = b.best_mate
        self.best_nonmate[rows] = b.best_nonmate
        for name in self.best_g:
            self.imp_ge_g[name][rows] = b.imp_ge_g[name]
            self.imp_n_g[name][rows] = b.imp_n_g[name]
            self.best_g[name][rows] = b.best_g[name]
        if self.hist_gen is not None and self.hist_imp is not None:
            for name in self.hist_gen:
                self.hist_gen[name] += b.hist_gen[name]
                self.hist_imp[name] += b.hist_imp[name]
        self.cand_p.append(b.cand_probe)
        self.cand_g.append(b.cand_gallery)
        self.cand_s.append(b.cand_similarity)

    def candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probe row, gallery row, similarity) of every comparison at or above the floor, in block order."""
        if not self.cand_p:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(self.cand_p), np.concatenate(self.cand_g), np.concatenate(self.cand_s)


def _ge_counts(rows: np.ndarray, level: np.ndarray, n_rows: int, T: int, extra: np.ndarray | None = None,
               n_extra: int = 1) -> np.ndarray:
    """Counts of entries with level > k per row (and extra code): shape (n_rows[, n_extra], T)."""
    key = rows * (T + 1) if extra is None else (rows * n_extra + extra) * (T + 1)
    counts = np.bincount(key + level, minlength=n_rows * n_extra * (T + 1))
    counts = counts.reshape((n_rows, T + 1) if extra is None else (n_rows, n_extra, T + 1))
    return np.flip(np.cumsum(np.flip(counts, -1), -1), -1)[..., 1:]


BlockMapper = Callable[..., Iterator[Any]]
"""``map_blocks(fn, context, blocks, *args)``: ``fn(context, rows, *args)`` for each block of
probe rows, results in the order of ``blocks`` (an executor may run them anywhere)."""


def map_blocks_here(fn: Callable[..., Any], context: Any, blocks: Sequence[np.ndarray], *args: Any) -> Iterator[Any]:
    """The default :data:`BlockMapper`: one block after another, in this process."""
    for rows in blocks:
        yield fn(context, rows, *args)


@dataclass(frozen=True, eq=False)
class ScoringContext:
    """Everything a block of probes is scored with (picklable; sent once to remote workers).

    Gallery arrays hold the enrolled gallery faces only (``gallery_index`` maps them back).
    Similarity is 0-100, higher is more alike.
    """

    probe_vectors: np.ndarray
    probe_subject: np.ndarray
    probe_sha: np.ndarray
    probe_columns: tuple[tuple[str, int, np.ndarray], ...]  # (name, groups, codes per probe)
    gallery_vectors: np.ndarray
    gallery_index: np.ndarray
    gallery_subject: np.ndarray
    gallery_sha: np.ndarray
    gallery_columns: tuple[tuple[str, int, np.ndarray], ...]  # (name, groups, codes per enrolled face)
    floor: float
    to_similarity: Callable[[np.ndarray], np.ndarray]

    def compare(self, rows: np.ndarray):
        """(similarity, genuine, impostor, same-image pairs) of probe ``rows`` against the gallery."""
        G = self.gallery_vectors
        sim = self.to_similarity(self.probe_vectors[rows] @ G.T) if len(G) else np.zeros((len(rows), 0))
        genuine = self.probe_subject[rows][:, None] == self.gallery_subject[None, :]
        valid = self.probe_sha[rows][:, None] != self.gallery_sha[None, :]
        return sim, genuine & valid, (~genuine) & valid, int((~valid).sum())


def impostor_histogram(ctx: ScoringContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1 of a block: histogram of its impostor similarities (0.01 bins), and each probe's
    highest impostor similarity (NaN: no impostor comparison)."""
    sim, _, imp, _ = ctx.compare(rows)
    with np.errstate(invalid="ignore"):
        best_false = np.where(imp.any(1), np.where(imp, sim, -np.inf).max(1, initial=-np.inf), np.nan)
    return np.bincount(similarity_bins(sim[imp]), minlength=N_BINS), best_false


@dataclass(frozen=True, eq=False)
class BlockCounts:
    """Pass 2 of a block of probe ``rows``: its rows of every count, its histograms, its candidates."""

    rows: np.ndarray
    imp_ge: np.ndarray
    gen_ge: np.ndarray
    imp_n: np.ndarray
    gen_n: np.ndarray
    best_mate: np.ndarray
    best_nonmate: np.ndarray
    best_g: dict[str, np.ndarray]
    imp_ge_g: dict[str, np.ndarray]
    imp_n_g: dict[str, np.ndarray]
    hist_gen: dict[str, np.ndarray]
    hist_imp: dict[str, np.ndarray]
    cand_probe: np.ndarray
    cand_gallery: np.ndarray
    cand_similarity: np.ndarray
    same_pairs: int


def count_block(ctx: ScoringContext, rows: np.ndarray, th: np.ndarray, floor: float | None = None
                ) -> BlockCounts:
    """Pass 2 of a block: counts at every threshold ``th``, best scores, histograms, and the
    candidates at or above ``floor`` (default ``ctx.floor``)."""
    sim, gen, imp, same = ctx.compare(rows)
    T = len(th)
    B = len(rows)
    level = np.searchsorted(th, sim, side="right")
    local = np.broadcast_to(np.arange(B)[:, None], sim.shape)
    ir, il = local[imp], level[imp]
    gr, gl = local[gen], level[gen]
    with np.errstate(invalid="ignore"):
        best_mate = np.where(gen.any(1), np.where(gen, sim, -np.inf).max(1, initial=-np.inf), np.nan)
        best_nonmate = np.where(imp.any(1), np.where(imp, sim, -np.inf).max(1, initial=-np.inf), np.nan)
    best_g, imp_ge_g, imp_n_g = {}, {}, {}
    for name, ng, gcodes in ctx.gallery_columns:
        codes = np.broadcast_to(gcodes[None, :], sim.shape)
        imp_ge_g[name] = _ge_counts(ir, il, B, T, extra=codes[imp], n_extra=ng)
        imp_n_g[name] = np.bincount(ir * ng + codes[imp], minlength=B * ng).reshape(B, ng)
        b = np.full((B, ng), np.nan)
        for g in range(ng):
            m = imp & (codes == g)
            b[:, g] = np.where(m.any(1), np.where(m, sim, -np.inf).max(1, initial=-np.inf), np.nan)
        best_g[name] = b
    bins = similarity_bins(sim)
    hist_gen = {OVERALL: np.bincount(bins[gen], minlength=N_BINS)[None, :]}
    hist_imp = {OVERALL: np.bincount(bins[imp], minlength=N_BINS)[None, :]}
    for name, ng, pcodes in ctx.probe_columns:
        key = pcodes[rows][:, None] * N_BINS + bins
        hist_gen[name] = np.bincount(key[gen], minlength=ng * N_BINS).reshape(ng, N_BINS)
        hist_imp[name] = np.bincount(key[imp], minlength=ng * N_BINS).reshape(ng, N_BINS)
    hit = (sim >= (ctx.floor if floor is None else floor)) & (gen | imp)
    hit_row, hit_col = np.nonzero(hit)
    return BlockCounts(
        rows=rows, imp_ge=_ge_counts(ir, il, B, T), gen_ge=_ge_counts(gr, gl, B, T),
        imp_n=imp.sum(1), gen_n=gen.sum(1), best_mate=best_mate, best_nonmate=best_nonmate,
        best_g=best_g, imp_ge_g=imp_ge_g, imp_n_g=imp_n_g, hist_gen=hist_gen, hist_imp=hist_imp,
        cand_probe=rows[hit_row], cand_gallery=ctx.gallery_index[hit_col], cand_similarity=sim[hit_row, hit_col],
        same_pairs=same,
    )


def score_exact(
    design: AuditDesign,
    probe_vectors: np.ndarray,
    gallery_vectors: np.ndarray,
    probe_ok: np.ndarray,
    gallery_ok: np.ndarray,
    probe_sha: Sequence[str | None],
    gallery_sha: Sequence[str | None],
    probe_reason: Sequence[str | None],
    gallery_reason: Sequence[str | None],
    to_similarity: Callable[[np.ndarray], np.ndarray],
    extra_thresholds: Sequence[float] = (),
    progress: bool = True,
    map_blocks: BlockMapper = map_blocks_here,
) -> SearchOutcomes:
    """Exact scores of every probe against every gallery face, streamed in blocks.

    ``probe_vectors`` / ``gallery_vectors``: L2-normalised embeddings, one row per
    record (rows of failed records are ignored). ``to_similarity`` maps cosines to
    Similarity 0-100 (rounded to 4 decimals). Two passes: the first builds the
    overall impostor histogram to find the thresholds of the FMR targets; the
    second counts at every threshold (audited, ``extra_thresholds``, FMR targets).
    ``map_blocks`` runs the blocks (:func:`map_blocks_here`, or an executor's, e.g. Ray's);
    each block's counts are exact integers, so where a block runs changes nothing.
    """
    cfg = design.config
    P = design.n_probes
    pi = np.nonzero(probe_ok)[0]
    ctx = scoring_context(design, probe_vectors, gallery_vectors, gallery_ok, probe_sha, gallery_sha,
                          to_similarity)
    block = max(1, int(cfg.block_size))
    blocks = [pi[start:start + block] for start in range(0, len(pi), block)]
    two_pass = bool(cfg.fmr_targets or cfg.match_counts)
    targets: dict[float, float | None] = {}
    counts: dict[int, float | None] = {}
    if two_pass:
        targets, counts = _operating_thresholds(design, ctx, blocks, progress, map_blocks)
    thresholds = sorted(
        {round(float(t), 2) for t in (*cfg.thresholds, *extra_thresholds,
                                      *(v for v in (*targets.values(), *counts.values()) if v is not None))}
    )
    th = np.array(thresholds, np.float64)
    # candidates down to the lowest threshold any figure uses (FMR targets, match counts, the
    # model's own point): every count in results.json can be recounted from candidates.csv
    cand_floor = min(float(cfg.floor), float(th[0]))
    acc = _Accumulator(design, th, hist_columns=True)
    with Progress("scoring (2/2)" if two_pass else "scoring", len(pi), enabled=progress) as bar:
        for b in map_blocks(count_block, ctx, blocks, th, cand_floor):
            acc.add(b)
            bar.update(len(b.rows))
    cand_probe, cand_gallery, cand_similarity = acc.candidates()
    return SearchOutcomes(
        exact=True, floor=cand_floor, thresholds=th,
        probe_ok=np.asarray(probe_ok, bool), gallery_ok=np.asarray(gallery_ok, bool),
        probe_reason=tuple(probe_reason), gallery_reason=tuple(gallery_reason),
        best_mate=acc.best_mate, best_nonmate=acc.best_nonmate, best_nonmate_gallery=acc.best_g,
        imp_ge=acc.imp_ge, imp_n=acc.imp_n, gen_ge=acc.gen_ge, gen_n=acc.gen_n,
        imp_ge_gallery=acc.imp_ge_g, imp_n_gallery=acc.imp_n_g,
        cand_probe=cand_probe, cand_gallery=cand_gallery, cand_similarity=cand_similarity,
        truncated=np.zeros(P, bool), same_image_pairs=acc.same_pairs,
        hist_genuine=acc.hist_gen, hist_impostor=acc.hist_imp, fmr_target_thresholds=targets,
        match_count_thresholds=counts,
    )


def scoring_context(
    design: AuditDesign,
    probe_vectors: np.ndarray,
    gallery_vectors: np.ndarray,
    gallery_ok: np.ndarray,
    probe_sha: Sequence[str | None],
    gallery_sha: Sequence[str | None],
    to_similarity: Callable[[np.ndarray], np.ndarray],
) -> ScoringContext:
    """The :class:`ScoringContext` of a design: every probe, and the enrolled gallery faces only."""
    gi = np.nonzero(gallery_ok)[0]
    psha, gsha = _sha_codes(probe_sha, gallery_sha)
    return ScoringContext(
        probe_vectors=np.asarray(probe_vectors, np.float64), probe_subject=design.probe_subject, probe_sha=psha,
        probe_columns=tuple((c.name, len(c.groups), c.codes) for c in design.probe_columns),
        gallery_vectors=np.asarray(gallery_vectors, np.float64)[gi], gallery_index=gi,
        gallery_subject=design.gallery_subject[gi], gallery_sha=gsha[gi],
        gallery_columns=tuple((c.name, len(c.groups), c.codes[gi]) for c in design.gallery_columns),
        floor=float(design.config.floor), to_similarity=to_similarity,
    )


def _operating_thresholds(design: AuditDesign, ctx: ScoringContext, blocks: Sequence[np.ndarray], progress: bool,
                          map_blocks: BlockMapper) -> tuple[dict[float, float | None], dict[int, float | None]]:
    """Pass 1: the thresholds of the FMR targets (from the overall impostor histogram) and of the
    match counts (from each probe's highest impostor similarity)."""
    cfg = design.config
    hist = np.zeros(N_BINS, np.int64)
    best_false = np.full(design.n_probes, np.nan)
    with Progress("scoring (1/2)", sum(len(rows) for rows in blocks), enabled=progress) as bar:
        for rows, (h, best) in zip(blocks, map_blocks(impostor_histogram, ctx, blocks), strict=True):
            hist += h
            best_false[rows] = best
            bar.update(len(rows))
    return _fmr_target_thresholds(hist, cfg.fmr_targets), match_count_thresholds(best_false, cfg.match_counts)


def outcomes_from_candidates(
    design: AuditDesign,
    probe_ok: np.ndarray,
    gallery_ok: np.ndarray,
    probe_sha: Sequence[str | None],
    gallery_sha: Sequence[str | None],
    probe_reason: Sequence[str | None],
    gallery_reason: Sequence[str | None],
    cand_probe: np.ndarray,
    cand_gallery: np.ndarray,
    cand_similarity: np.ndarray,
    truncated: np.ndarray | None = None,
    extra_thresholds: Sequence[float] = (),
) -> SearchOutcomes:
    """Outcomes from candidate lists (every candidate >= the lowest threshold).

    Comparison counts (``*_n``) come from the design: each enrolled probe is
    compared with each enrolled gallery face. Counts at thresholds >= the floor
    are exact unless a search was cut at the candidate limit (``truncated``).
    """
    cfg = design.config
    P = design.n_probes
    probe_ok = np.asarray(probe_ok, bool)
    gallery_ok = np.asarray(gallery_ok, bool)
    floor = cfg.floor
    psha, gsha = _sha_codes(probe_sha, gallery_sha)
    cp = np.asarray(cand_probe, np.int64)
    cg = np.asarray(cand_gallery, np.int64)
    cs = np.asarray(cand_similarity, np.float64)
    keep = (cs >= floor) & (psha[cp] != gsha[cg]) & probe_ok[cp] & gallery_ok[cg]
    cp, cg, cs = cp[keep], cg[keep], cs[keep]
    genuine = design.probe_subject[cp] == design.gallery_subject[cg]
    best_false = np.full(P, np.nan)
    np.fmax.at(best_false, cp[~genuine], cs[~genuine])
    counts = match_count_thresholds(best_false, cfg.match_counts, floor)
    th = np.array(sorted({round(float(t), 2) for t in (*cfg.thresholds, *extra_thresholds,
                                                        *(v for v in counts.values() if v is not None))
                          if t >= floor}))
    T = len(th)
    level = np.searchsorted(th, cs, side="right")
    same = _same_image_pairs(design, probe_ok, gallery_ok, psha, gsha)
    gen_n, imp_n = _comparison_counts(design, probe_ok, gallery_ok, same)
    best_mate = np.full(P, np.nan)
    best_nonmate = np.full(P, np.nan)
    np.fmax.at(best_mate, cp[genuine], cs[genuine])
    np.fmax.at(best_nonmate, cp[~genuine], cs[~genuine])
    best_g, imp_ge_g, imp_n_g = {}, {}, {}
    imp = ~genuine
    for c in design.gallery_columns:
        ng = len(c.groups)
        codes = c.codes[cg]
        b = np.full((P, ng), np.nan)
        np.fmax.at(b, (cp[imp], codes[imp]), cs[imp])
        best_g[c.name] = b
        imp_ge_g[c.name] = _ge_counts(cp[imp], level[imp], P, T, extra=codes[imp], n_extra=ng)
        imp_n_g[c.name] = _gallery_group_comparisons(design, c, probe_ok, gallery_ok, same)
    return SearchOutcomes(
        exact=False, floor=floor, thresholds=th, probe_ok=probe_ok, gallery_ok=gallery_ok,
        probe_reason=tuple(probe_reason), gallery_reason=tuple(gallery_reason),
        best_mate=best_mate, best_nonmate=best_nonmate, best_nonmate_gallery=best_g,
        imp_ge=_ge_counts(cp[imp], level[imp], P, T), imp_n=imp_n,
        gen_ge=_ge_counts(cp[genuine], level[genuine], P, T), gen_n=gen_n,
        imp_ge_gallery=imp_ge_g, imp_n_gallery=imp_n_g,
        cand_probe=cp, cand_gallery=cg, cand_similarity=cs,
        truncated=np.zeros(P, bool) if truncated is None else np.asarray(truncated, bool),
        same_image_pairs=sum(len(js) for js in same.values()), match_count_thresholds=counts,
    )


def _same_image_pairs(design: AuditDesign, probe_ok: np.ndarray, gallery_ok: np.ndarray, psha: np.ndarray,
                      gsha: np.ndarray) -> dict[int, list[int]]:
    """Enrolled probe -> the enrolled gallery faces of byte-identical images (left out of every count)."""
    by_sha: dict[int, list[int]] = {}
    for j in np.nonzero(gallery_ok)[0]:
        by_sha.setdefault(int(gsha[j]), []).append(int(j))
    return {int(i): by_sha[int(psha[i])] for i in np.nonzero(probe_ok)[0] if int(psha[i]) in by_sha}


def _comparison_counts(design: AuditDesign, probe_ok: np.ndarray, gallery_ok: np.ndarray,
                       same: Mapping[int, Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) comparisons of each probe: every enrolled probe against every enrolled
    gallery face of the same / another person, byte-identical images left out; 0 for failed probes."""
    P = design.n_probes
    gsub_ok = design.gallery_subject[gallery_ok]
    subj_count = np.bincount(gsub_ok, minlength=len(design.subjects))
    same_img = np.zeros(P, np.int64)
    same_img_gen = np.zeros(P, np.int64)
    for i, js in same.items():
        same_img[i] = len(js)
        same_img_gen[i] = sum(int(design.gallery_subject[j] == design.probe_subject[i]) for j in js)
    own = subj_count[design.probe_subject]
    gen_n = np.where(probe_ok, own - same_img_gen, 0)
    imp_n = np.where(probe_ok, int(gallery_ok.sum()) - own - (same_img - same_img_gen), 0)
    return gen_n, imp_n


def _gallery_group_comparisons(design: AuditDesign, column: GroupColumn, probe_ok: np.ndarray,
                               gallery_ok: np.ndarray, same: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Impostor comparisons of each probe with each group of a gallery column: (probes, groups).

    The group's enrolled faces minus the probe's own person's and minus byte-identical images.
    """
    ng = len(column.groups)
    gi = np.nonzero(gallery_ok)[0]
    per_group = np.bincount(column.codes[gi], minlength=ng)
    own = np.zeros((len(design.subjects), ng), np.int64)
    np.add.at(own, (design.gallery_subject[gi], column.codes[gi]), 1)
    n = per_group[None, :] - own[design.probe_subject]
    n_same = np.zeros((design.n_probes, ng), np.int64)
    for i, js in same.items():
        for j in js:
            if design.gallery_subject[j] != design.probe_subject[i]:
                n_same[i, column.codes[j]] += 1
    return np.where(probe_ok[:, None], n - n_same, 0)
