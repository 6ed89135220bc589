"""The usage report an oversight body can check (RCW 43.386.020/.060/.070, EU AI Act art. 12).

``faceaudit report usage --from D --to D [--format html|json]`` counts, for the
period: identification searches by collection, purpose and threshold; face searches of
stored video apart (jobs by collection and warrant, and the people searched in them); refusals;
failures; leads confirmed, rejected and pending; time from search to decision;
every policy change; audits run; retention deletions. Every figure lists the
search-log records it counts, and the report carries the log's verification and
a head signed with the deployment key (an anchor), so anyone holding the log can
recompute each figure and check it was not made up afterwards.
"""

from __future__ import annotations

import datetime as dt
import html
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability._accountability import Accountability
from faceaudit.accountability._anchors import DeploymentKey, issue_anchor
from faceaudit.accountability._log import LogRecord


@dataclass(frozen=True)
class Figure:
    """One count of the report: ``count`` things, each traceable to the log ``records`` (seqs)."""

    label: str
    count: int
    records: Tuple[int, ...]

    def to_json(self) -> Dict[str, Any]:
        return {"Label": self.label, "Count": self.count, "LogRecords": list(self.records)}


@dataclass(frozen=True)
class DecisionTimes:
    """Hours from a search to the decision that closed its lead (confirmed or rejected)."""

    n: int
    median_hours: Optional[float]
    max_hours: Optional[float]
    records: Tuple[int, ...]

    def to_json(self) -> Dict[str, Any]:
        return {"Leads": self.n, "MedianHours": self.median_hours, "MaxHours": self.max_hours,
                "LogRecords": list(self.records)}


@dataclass(frozen=True)
class UsageReport:
    """Use of face recognition in one period (``start`` inclusive, ``end`` exclusive, UTC)."""

    start: dt.datetime
    end: dt.datetime
    searches: Figure
    searches_by: Tuple[Figure, ...]  # collection / purpose / threshold
    refusals: Tuple[Figure, ...]  # collection / reason
    failures: Figure
    audit_searches: Figure
    leads: Tuple[Figure, ...]  # confirmed, rejected, pending
    decision_times: DecisionTimes
    policy_changes: Tuple[Dict[str, Any], ...]
    audits: Tuple[Figure, ...]
    retention: Tuple[Figure, ...]
    log_ok: bool
    log_records: int
    log_problem: str
    anchor: Dict[str, Any]
    video_searches: Figure = Figure("face searches of stored video", 0, ())
    video_searches_by: Tuple[Figure, ...] = ()  # collection / warrant
    video_people: Figure = Figure("people searched in stored video", 0, ())

    def to_json(self) -> Dict[str, Any]:
        return {
            "Period": {"From": self.start.isoformat(), "To": self.end.isoformat()},
            "Searches": self.searches.to_json(),
            "SearchesByCollectionPurposeThreshold": [f.to_json() for f in self.searches_by],
            "Refusals": [f.to_json() for f in self.refusals],
            "Failures": self.failures.to_json(),
            "AuditSearches": self.audit_searches.to_json(),
            "VideoSearches": self.video_searches.to_json(),
            "VideoSearchesByCollectionWarrant": [f.to_json() for f in self.video_searches_by],
            "PeopleSearchedInVideo": self.video_people.to_json(),
            "Leads": [f.to_json() for f in self.leads],
            "TimeToDecision": self.decision_times.to_json(),
            "PolicyChanges": list(self.policy_changes),
            "Audits": [f.to_json() for f in self.audits],
            "RetentionDeletions": [f.to_json() for f in self.retention],
            "Log": {"Verified": self.log_ok, "Records": self.log_records, "Problem": self.log_problem,
                    "SignedHead": self.anchor},
            "Notice": ("Every figure lists the search-log records it counts; check them with "
                       "`faceaudit log verify --anchors DIR` holding this report's signed head."),
        }


def parse_day(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` as midnight UTC."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise InvalidParameterError(f"dates are YYYY-MM-DD, got {text!r}") from None


def _figure(label: str, recs: List[LogRecord]) -> Figure:
    return Figure(label, len(recs), tuple(r.seq for r in recs))


def _grouped(recs: List[LogRecord], key) -> Tuple[Figure, ...]:
    groups: Dict[str, List[LogRecord]] = defaultdict(list)
    for r in recs:
        groups[key(r)].append(r)
    return tuple(_figure(k, v) for k, v in sorted(groups.items()))


def usage_report(acc: Accountability, start: dt.datetime, end: dt.datetime, *, sign: bool = True) -> UsageReport:
    """Count the period's use from the search log (``end`` is exclusive)."""
    if end <= start:
        raise InvalidParameterError("--to must be after --from")
    verified = acc.log.verify()
    lo, hi = start.timestamp(), end.timestamp()
    everything = list(acc.log.records())
    period = [r for r in everything if lo <= r.time < hi]
    kinds: Dict[str, List[LogRecord]] = defaultdict(list)
    for r in period:
        kinds[r.kind].append(r)
    searches = [r for r in kinds["search"] if not r.data.get("audit")]
    audit_searches = [r for r in kinds["search"] if r.data.get("audit")]
    # a face search of stored video logs one search per person found (operation StartFaceSearch)
    # and one video_search record per video: counted apart from the image searches
    video_people = [r for r in searches if r.data.get("operation") == "StartFaceSearch"]
    image_searches = [r for r in searches if r.data.get("operation") != "StartFaceSearch"]

    def search_key(r: LogRecord) -> str:
        d = r.data
        return (f"{d.get('collection_id') or '(no collection: ' + str(d.get('operation')) + ')'} / "
                f"{d.get('purpose') or '(no purpose given)'} / threshold {float(d.get('threshold') or 0):g}")

    # leads of the period's searches, as they stand now, each traced to its deciding records
    search_by_seq = {r.seq: r for r in searches}
    review_by_seq = {r.seq: r for r in everything if r.kind == "review"}
    by_status: Dict[str, List[int]] = {"confirmed": [], "rejected": [], "pending": []}
    hours: List[float] = []
    time_records: List[int] = []
    counted = {s: 0 for s in by_status}
    for lead in acc.leads(None, 1_000_000):
        if lead.search_seq not in search_by_seq:
            continue
        counted[lead.status] += 1
        if lead.status == "pending":
            by_status["pending"].append(lead.search_seq)
            continue
        closing = max(lead.decisions, key=lambda d: d.log_seq)
        by_status[lead.status].append(closing.log_seq)
        closing_rec = review_by_seq.get(closing.log_seq)
        if closing_rec is not None:
            hours.append((closing_rec.time - search_by_seq[lead.search_seq].time) / 3600.0)
            time_records += [lead.search_seq, closing.log_seq]
    leads = tuple(Figure(f"{s} leads", counted[s], tuple(sorted(set(by_status[s])))) for s in by_status)
    times = DecisionTimes(len(hours), round(statistics.median(hours), 2) if hours else None,
                          round(max(hours), 2) if hours else None, tuple(sorted(set(time_records))))
    policies = tuple({"LogRecord": r.seq, "Time": _iso(r.time), "SetBy": r.data.get("access_key_id"),
                      "Policy": r.data.get("policy")} for r in kinds["policy"])
    audits = _grouped(kinds["audit-collection"], lambda r: f"audit collection created by {r.data.get('access_key_id')}")
    retention = tuple(
        Figure(f"{r.data.get('what')} deleted" + (f" from {r.data['collection_id']}" if r.data.get("collection_id") else ""),
               int(r.data.get("count") or 0), (r.seq,))
        for r in kinds["retention"])
    anchor = issue_anchor(acc.log, DeploymentKey(acc.data_dir)) if (sign and verified.ok) else {}
    return UsageReport(
        start=start, end=end, searches=_figure("identification searches", image_searches),
        searches_by=_grouped(image_searches, search_key),
        refusals=_grouped(kinds["refused"], lambda r: f"{r.data.get('collection_id')}: {r.data.get('reason')}"),
        failures=_figure("failed searches", kinds["failed"]),
        audit_searches=_figure("searches by audits (no leads)", audit_searches),
        leads=leads, decision_times=times, policy_changes=policies, audits=audits, retention=retention,
        log_ok=verified.ok, log_records=verified.records, log_problem=verified.problem, anchor=anchor,
        video_searches=_figure("face searches of stored video", kinds["video_search"]),
        video_searches_by=_grouped(kinds["video_search"], lambda r: (
            f"{r.data.get('collection_id')} / warrant {r.data.get('warrant') or '(none: waived by the policy)'}")),
        video_people=_figure("people searched in stored video", video_people),
    )


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _records(seqs: Tuple[int, ...], limit: int = 12) -> str:
    if not seqs:
        return "-"
    shown = ", ".join(map(str, seqs[:limit]))
    return shown + (f" and {len(seqs) - limit} more" if len(seqs) > limit else "")


def _rows(figures, head: str) -> str:
    body = "".join(f"<tr><td>{_esc(f.label)}</td><td class=n>{f.count}</td><td class=rec>{_records(f.records)}</td></tr>"
                   for f in figures) or '<tr><td colspan=3 class=muted>none</td></tr>'
    return f"<table><tr><th>{_esc(head)}</th><th>count</th><th>log records</th></tr>{body}</table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f1;color:#1d1d1b}
header{background:#1d1d1b;color:#fff;padding:14px 28px}header h1{margin:0;font-size:22px}
main{max-width:1000px;margin:0 auto;padding:12px 28px}section{background:#fff;border:1px solid #ccc;border-radius:6px;margin:14px 0;padding:10px 16px}
h2{font-size:17px;margin:6px 0 10px}table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e3e3;vertical-align:top}td.n{text-align:right;width:70px;font-weight:600}
td.rec{color:#555;font-size:12px;width:260px}.big{display:flex;gap:14px;flex-wrap:wrap}.big div{flex:1;min-width:150px;background:#f7f7f4;border:1px solid #ddd;border-radius:6px;padding:10px}
.big b{display:block;font-size:26px}.ok{color:#0a6b2d}.bad{color:#a11}.muted{color:#666;font-size:13px}code{font-size:12px;word-break:break-all}"""


def _policy_text(policy: Optional[Dict[str, Any]]) -> str:
    if not policy:
        return "-"
    from faceaudit.engine import promised_fmr

    cid = policy.get("CollectionId")
    parts = ["deployment default" if cid == "*" else f"collection {cid}"]
    mt = policy.get("EffectiveMinFaceMatchThreshold", policy.get("MinFaceMatchThreshold"))
    parts.append("no minimum threshold" if mt is None else
                 f"minimum threshold {mt:g} (false-match rate <= {promised_fmr(mt):.2g})")
    if policy.get("MaxFaces") is not None:
        parts.append(f"at most {policy['MaxFaces']} candidates")
    parts.append("case reference required" if policy.get("RequireCaseReference") else "case reference optional")
    if policy.get("Purpose"):
        parts.append(f"purpose {policy['Purpose']}")
    return "; ".join(parts)


def render_html(report: UsageReport) -> str:
    """A self-contained HTML page of the report (no network)."""
    r = report
    period = f"{r.start:%Y-%m-%d} to {(r.end - dt.timedelta(seconds=1)):%Y-%m-%d} (UTC)"
    leads = {f.label.split()[0]: f for f in r.leads}
    t = r.decision_times
    timing = ("no lead was decided" if not t.n else
              f"{t.n} decided lead(s): median {t.median_hours:g} h, longest {t.max_hours:g} h from search to final decision")
    policies = "".join(
        f"<tr><td>{_esc(p['Time'])}</td><td>{_esc(p['SetBy'])}</td><td>{_esc(_policy_text(p['Policy']))}</td>"
        f"<td class=rec>{p['LogRecord']}</td></tr>" for p in r.policy_changes) or "<tr><td colspan=4 class=muted>none</td></tr>"
    log_state = (f'<span class=ok>verified: {r.log_records} records, chain intact</span>' if r.log_ok
                 else f'<span class=bad>VERIFICATION FAILED: {_esc(r.log_problem)}</span>')
    anchor = r.anchor
    signed = (f"record {anchor['seq']}, hash <code>{_esc(anchor['hash'])}</code>, signed by Ed25519 key "
              f"<code>{_esc(anchor['public_key'])}</code>; signature <code>{_esc(anchor['signature'])}</code>"
              if anchor else "not signed")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>faceaudit usage report {period}</title><style>{_CSS}</style></head><body>
<header><h1>Face recognition usage report: {period}</h1></header><main>
<section><div class=big>
<div><b>{r.searches.count}</b>identification searches</div>
<div><b>{r.video_searches.count}</b>face searches of stored video</div>
<div><b>{sum(f.count for f in r.refusals)}</b>searches refused by policy</div>
<div><b>{leads['confirmed'].count}</b>leads confirmed by two people</div>
<div><b>{leads['rejected'].count}</b>leads rejected</div>
<div><b>{leads['pending'].count}</b>leads still pending</div>
</div><p class=muted>A candidate is an investigative lead, not an identification. Thresholds are Similarity
(0-100, higher is more alike; 80 promises a false-match rate of 1e-5 per comparison, 90 1e-6, 99 1.3e-7).</p></section>
<section><h2>Searches by collection / purpose / threshold</h2>{_rows(r.searches_by, "collection / purpose / threshold")}
<p class=muted>Also: {r.failures.count} failed search(es) (records {_records(r.failures.records)}); {r.audit_searches.count}
search(es) made by accuracy audits on their own collections, which make no leads.</p></section>
<section><h2>Face searches of stored video, by collection / warrant</h2>{_rows(r.video_searches_by, "collection / warrant")}
<p class=muted>Everyone in the footage is searched: {r.video_people.count} people in all (one logged search
each, records {_records(r.video_people.records)}).</p></section>
<section><h2>Refused searches (policy)</h2>{_rows(r.refusals, "collection: reason")}</section>
<section><h2>Human review of the period's leads</h2>{_rows(r.leads, "status now")}<p>{_esc(timing)}
(records {_records(t.records)}).</p></section>
<section><h2>Policy changes</h2><table><tr><th>time</th><th>by</th><th>policy</th><th>log record</th></tr>{policies}</table></section>
<section><h2>Audits run</h2>{_rows(r.audits, "audit")}</section>
<section><h2>Retention deletions</h2>{_rows(r.retention, "deleted")}</section>
<section><h2>Where these figures come from</h2><p>The search log: {log_state}. Signed head this report was
computed from: {signed}. Keep it with the anchors you hold and check the log with
<code>faceaudit log verify --anchors DIR</code>; each figure above lists the log records it counts.</p></section>
</main></body></html>"""
