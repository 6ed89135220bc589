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
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability._accountability import Accountability
from faceaudit.accountability._anchors import DeploymentKey, issue_anchor
from faceaudit.accountability._log import LogRecord


@dataclass(frozen=True)
class Figure:
    """One count of the report: ``count`` things, each traceable to the log ``records`` (seqs)."""

    label: str
    count: int
    records: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"Label": self.label, "Count": self.count, "LogRecords": list(self.records)}


@dataclass(frozen=True)
class DecisionTimes:
    """Hours from a search to the decision that closed its lead (confirmed or rejected)."""

    n: int
    median_hours: float | None
    max_hours: float | None
    records: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"Leads": self.n, "MedianHours": self.median_hours, "MaxHours": self.max_hours,
                "LogRecords": list(self.records)}


@dataclass(frozen=True)
class UsageReport:
    """Use of face recognition in one period (``start`` inclusive, ``end`` exclusive, UTC)."""

    start: dt.datetime
    end: dt.datetime
    searches: Figure
    searches_by: tuple[Figure, ...]  # collection / purpose / threshold
    refusals: tuple[Figure, ...]  # collection / reason
    failures: Figure
    audit_searches: Figure
    leads: tuple[Figure, ...]  # confirmed, rejected, pending
    decision_times: DecisionTimes
    policy_changes: tuple[dict[str, Any], ...]
    audits: tuple[Figure, ...]
    retention: tuple[Figure, ...]
    log_ok: bool
    log_records: int
    log_problem: str
    anchor: dict[str, Any]
    video_searches: Figure = Figure("face searches of stored video", 0, ())
    video_searches_by: tuple[Figure, ...] = ()  # collection / warrant
    video_people: Figure = Figure("people searched in stored video", 0, ())

    def to_json(self) -> dict[str, Any]:
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
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidParameterError(f"dates are YYYY-MM-DD, got {text!r}") from None


def _figure(label: str, recs: list[LogRecord]) -> Figure:
    return Figure(label, len(recs), tuple(r.seq for r in recs))


def _grouped(recs: list[LogRecord], key) -> tuple[Figure, ...]:
    groups: dict[str, list[LogRecord]] = defaultdict(list)
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
    kinds: dict[str, list[LogRecord]] = defaultdict(list)
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
    by_status: dict[str, list[int]] = {"confirmed": [], "rejected": [], "pending": []}
    hours: list[float] = []
    time_records: list[int] = []
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
        Figure(f"{r.data.get('what')} deleted"
               + (f" from {r.data['collection_id']}" if r.data.get("collection_id") else ""),
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
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _records(seqs: tuple[int, ...], limit: int = 12) -> str:
    if not seqs:
        return "-"
    shown = ", ".join(map(str, seqs[:limit]))
    return shown + (f" and {len(seqs) - limit} more" if len(seqs) > limit else "")


USAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'"
"""The usage report's Content-Security-Policy: inline style only, nothing fetched, no script."""


class _PolicyRow(NamedTuple):
    time: str
    set_by: str
    policy: str
    seq: int


def _policy_text(policy: dict[str, Any] | None) -> str:
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
    from faceaudit._templates import render

    r = report
    t = r.decision_times
    timing = ("no lead was decided" if not t.n else
              f"{t.n} decided lead(s): median {t.median_hours:g} h, longest {t.max_hours:g} h "
              "from search to final decision")
    policies = [_PolicyRow(str(p["Time"]), str(p["SetBy"]), _policy_text(p["Policy"]), p["LogRecord"])
                for p in r.policy_changes]
    return render(
        "faceaudit.accountability", "usage.html.j2", filters={"records": _records}, csp=USAGE_CSP, r=r,
        period=f"{r.start:%Y-%m-%d} to {(r.end - dt.timedelta(seconds=1)):%Y-%m-%d} (UTC)",
        leads={f.label.split()[0]: f for f in r.leads}, refusals=sum(f.count for f in r.refusals),
        timing=timing, policies=policies, anchor=r.anchor)
