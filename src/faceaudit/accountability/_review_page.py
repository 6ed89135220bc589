"""The review web page: probe and candidate side by side, with what the numbers mean.

Pure rendering (no I/O): the service passes the leads, the reviewer, a CSRF
token and image URLs; this module returns self-contained HTML (no network).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypedDict

from faceaudit.accountability._review import CONFIRMATIONS_REQUIRED, LEAD_NOTICE, Lead, same_person


def measured_fmr(model_version: str, threshold: float) -> str:
    """What ``threshold`` means: the false-match rate the scale promises, and the model's measured one.

    The measured figure is counted on the model's calibration pairs (strangers'
    official portraits and mugshots), with its Wilson 95% interval.
    """
    from faceaudit._errors import FaceAuditError
    from faceaudit.engine import get_model, one_in, promised_fmr

    promise = (f"Similarity {threshold:g} promises a false-match rate of {_pct(promised_fmr(threshold))} "
               f"per comparison ({one_in(threshold)})")
    try:
        cal = get_model(model_version).calibrated()
    except FaceAuditError:
        return promise + "; this model has no calibration"
    fmr = cal.fmr(threshold)
    if not fmr.measured:
        return (f"{promise}; for this model that is extrapolated from its calibration ({fmr.errors} "
                f"false match{'' if fmr.errors == 1 else 'es'} in {fmr.trials:,} stranger pairs at this "
                "threshold: too few to measure)")
    return (f"{promise}; measured for this model: {_pct(fmr.rate)} ({fmr.errors} false "
            f"match{'' if fmr.errors == 1 else 'es'} in {fmr.trials:,} stranger pairs; 95% interval "
            f"{_pct(fmr.ci95[0])} to {_pct(fmr.ci95[1])})")


def _pct(rate: float) -> str:
    return f"{100 * rate:.3g}%"


REVIEW_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'"
"""The review pages' Content-Security-Policy (the server sends the same one as a header)."""


class _Decision(NamedTuple):
    reviewer: str
    decision: str
    when: str
    note: str


class _LeadView(NamedTuple):
    """One lead as the page shows it (every field plain text; the template escapes it)."""

    lead_id: str
    status: str
    missing: str
    probe_url: str | None
    candidate_url: str | None
    probe_absent: str
    candidate_absent: str
    candidate_caption: str
    similarity: str
    rank: int
    candidates: int
    threshold: str
    fmr_text: str
    confirmations: int
    history: tuple[_Decision, ...]
    form: str  # "" (decided), "not-allowed" or "decide"
    why_not: str  # why this person may not decide ("" unless form is "not-allowed")
    probe_quality: str = ""  # what the probe's quality means for this model (measured data only)
    quality_warning: bool = False  # the probe is below the measured range
    quality_flag: str = ""  # why the probe is below its policy's minimum (flag mode)


class _SearchView(NamedTuple):
    seq: int
    operation: str
    collection: str
    case: str
    requested_by: str
    when: str
    threshold: str
    candidates: int
    gallery: str
    leads: tuple[_LeadView, ...]


def _render(name: str, **context) -> str:
    from faceaudit._templates import render

    return render("faceaudit.accountability", name, csp=REVIEW_CSP, **context)


def render_login(message: str = "", csrf: str = "") -> str:
    """The sign-in page: an access key id and secret (admin, operator or reviewer role)."""
    return _render("login.html.j2", message=message, csrf=csrf)


def render_review_page(
    leads: Iterable[Lead],
    reviewer,
    csrf_token: str,
    probe_url: Callable[[Lead], str | None],
    candidate_url: Callable[[Lead], str | None],
    missing: Callable[[Lead], str],
    may_decide: Callable[[Lead], bool],
    status: str = "pending",
    notice: str = "",
    collection: str = "",
    case: str = "",
) -> str:
    """The leads of one status grouped by search (newest first), each probe | candidate with the
    decision buttons when this person may decide."""
    leads = list(leads)
    groups: dict[int, list[Lead]] = {}
    for lead in leads:
        groups.setdefault(lead.search_seq, []).append(lead)
    searches = []
    for seq, members in groups.items():
        first = members[0]
        searches.append(_SearchView(
            seq=seq, operation=str(first.operation), collection=first.collection_id or "-",
            case=first.case_reference or "-", requested_by=str(first.requested_by_person or first.requested_by),
            when=_when(first.created_at), threshold=f"{first.threshold:g}", candidates=first.candidates,
            gallery="unknown" if first.gallery_size is None else f"{first.gallery_size:,}",
            leads=tuple(_lead_view(lead, probe_url(lead), candidate_url(lead),
                                   missing(lead) if lead.status == "pending" else "",
                                   may_decide(lead), _why_not(reviewer, lead)) for lead in members)))
    return _render(
        "review.html.j2", status=status, status_title=status.capitalize(), notice=notice, collection=collection,
        case=case, csrf=csrf_token, who=f"{reviewer.person or '(no person: may not decide)'} ({reviewer.key_id})",
        tabs=("pending", "confirmed", "rejected"), lead_notice=LEAD_NOTICE,
        confirmations_required=CONFIRMATIONS_REQUIRED, n_leads=len(leads), searches=searches)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _why_not(reviewer, lead: Lead) -> str:
    """Why this signed-in key may not decide on a pending lead, in the words the page shows."""
    person = getattr(reviewer, "person", "") or ""
    if not person:
        return ("this key has no person: only a key issued to a named person may decide (an admin can issue "
                "one with `faceaudit keys create --person NAME`)")
    if lead.requested_by == getattr(reviewer, "key_id", None) or same_person(lead.requested_by_person, person):
        return "you ran the search (a different person must decide)"
    if any(same_person(d.reviewer, person) for d in lead.decisions):
        return "you have decided already (a different person must decide next)"
    return "it is not pending"


def _lead_view(lead: Lead, probe: str | None, cand: str | None, missing: str, may_decide: bool,
               why_not: str = "") -> _LeadView:
    candidate_name = lead.candidate_external_image_id or lead.candidate_user_id or lead.candidate_face_id or "-"
    hidden = "shown only to a person deciding on this lead"
    if missing.startswith("the probe"):
        probe = None  # never an <img> that cannot load
    elif missing:
        cand = None
    form = "" if lead.status != "pending" else ("decide" if may_decide else "not-allowed")
    return _LeadView(
        lead_id=str(lead.lead_id), status=str(lead.status), missing=missing, probe_url=probe, candidate_url=cand,
        probe_absent="probe image not kept" if missing.startswith("the probe") else hidden,
        candidate_absent=(("no image: " + missing) if (missing and not missing.startswith("the probe"))
                          else hidden),
        candidate_caption=f"candidate #{lead.rank}: {candidate_name}",
        similarity=f"{lead.similarity:.2f}", rank=lead.rank, candidates=lead.candidates,
        threshold=f"{lead.threshold:g}", fmr_text=measured_fmr(lead.model_version, lead.threshold),
        confirmations=sum(1 for d in lead.decisions if d.decision == "confirm"),
        history=tuple(_Decision(str(d.reviewer), str(d.decision), _when(d.time), d.note or "") for d in lead.decisions),
        form=form, why_not=why_not if form == "not-allowed" else "", **_quality_view(lead))


class _QualityView(TypedDict):
    """The quality fields of a `_LeadView`, passed to it by keyword."""

    probe_quality: str
    quality_warning: bool
    quality_flag: str


def _quality_view(lead: Lead) -> _QualityView:
    """The lead's probe quality in words (measured figures only), its warning and its policy flag."""
    from faceaudit.accountability._probe_quality import BELOW_MEASURED, quality_sentence

    q = lead.probe_quality
    if q is None:
        text = "not measured for this search (a stored face searched by id, or logged by an earlier version)"
    else:
        text = f"{q.text()}. {quality_sentence(q, lead.model_version, lead.threshold)}"
    return {"probe_quality": text, "quality_warning": q is not None and q.band == BELOW_MEASURED,
            "quality_flag": lead.quality_flag}
