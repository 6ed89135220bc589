"""The review web page: probe and candidate side by side, with what the numbers mean.

Pure rendering (no I/O): the service passes the leads, the reviewer, a CSRF
token and image URLs; this module returns self-contained HTML (no network).
"""

from __future__ import annotations

import html
import time
from typing import Callable, Dict, Iterable, List, Optional

from faceaudit.accountability._review import CONFIRMATIONS_REQUIRED, LEAD_NOTICE, Lead


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


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f1;color:#1d1d1b}
header{background:#1d1d1b;color:#fff;padding:12px 24px;display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap;gap:8px}
header h1{font-size:20px;margin:0}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
.notice{background:#fff4d6;border:2px solid #c98a00;padding:10px 14px;margin:12px 0;font-weight:600}
.search{background:#ecece7;border:1px solid #bbb;border-radius:6px;margin:18px 0;padding:10px 14px}
.search h3{margin:4px 0 8px;font-size:16px}
.lead{background:#fff;border:1px solid #ccc;border-radius:6px;margin:12px 0;padding:14px}
.pair{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.pair figure{margin:0;text-align:center}
.pair img{width:240px;height:300px;object-fit:contain;background:#ddd;border:1px solid #999}
.noimg{width:240px;height:300px;background:#ddd;border:1px dashed #999;display:flex;align-items:center;justify-content:center;color:#555;padding:8px;text-align:center}
.pair figcaption{font-size:13px;color:#444;margin-top:4px;max-width:240px;overflow-wrap:anywhere}
.facts{flex:1;min-width:240px}
.facts dt{font-weight:600;margin-top:6px}
.facts dd{margin:0}
.status-pending{color:#8a5a00}.status-confirmed{color:#0a6b2d}.status-rejected{color:#a11}
.blocked{background:#fde8e8;border:1px solid #a11;padding:8px;margin-top:8px}
form.decide{margin-top:10px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
form.decide input[type=text]{flex:1;min-width:200px;padding:6px}
form.filter{display:flex;gap:8px;flex-wrap:wrap;align-items:end;margin:8px 0}
form.filter input{padding:6px}
button{padding:8px 16px;font-size:15px;border-radius:4px;border:1px solid #333;cursor:pointer}
button.confirm{background:#0a6b2d;color:#fff}button.reject{background:#a11;color:#fff}
button.link{background:none;border:none;color:#fff;text-decoration:underline;padding:0;font-size:inherit}
.muted{color:#666;font-size:13px}
nav{display:flex;gap:14px;align-items:center;flex-wrap:wrap}
nav a{color:#fff}
nav form{margin:0}
@media (max-width:640px){
 main{padding:8px 10px}
 header{padding:10px 12px}
 header h1{font-size:17px}
 .pair{gap:10px}
 .pair figure{flex:1 1 45%}
 .pair img,.noimg{width:100%;height:auto;aspect-ratio:4/5}
 .facts{min-width:100%}
 button{width:100%;padding:12px}
 form.decide input[type=text]{min-width:100%}
}
"""

_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def render_login(message: str = "", csrf: str = "") -> str:
    """The sign-in page: an access key id and secret (admin, operator or reviewer role)."""
    msg = f'<p class="notice">{_esc(message)}</p>' if message else ""
    form = f"""<form method="post" action="/review/login" id="login">
<input type="hidden" name="csrf" value="{_esc(csrf)}">
<p><label>Access key id<br><input name="access_key_id" id="access_key_id" size="40" autocomplete="username"></label></p>
<p><label>Secret access key<br><input name="secret" id="secret" type="password" size="50" autocomplete="current-password"></label></p>
<p><button type="submit" id="signin">Sign in</button></p>
</form>""" if csrf else '<p><a href="/review/login">Open the sign-in page</a></p>'
    return f"""{_HEAD}
<title>faceaudit review: sign in</title><style>{_CSS}</style></head><body>
<header><h1>faceaudit: human review of leads</h1></header><main>{msg}
{form}<p class="muted">Reviewers sign in with their own key, which belongs to a named person: each decision
is logged under that person, and two confirmations must come from two different people.</p>
</main></body></html>"""


def render_review_page(
    leads: Iterable[Lead],
    reviewer,
    csrf_token: str,
    probe_url: Callable[[Lead], Optional[str]],
    candidate_url: Callable[[Lead], Optional[str]],
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
    groups: Dict[int, List[Lead]] = {}
    for lead in leads:
        groups.setdefault(lead.search_seq, []).append(lead)
    blocks = []
    for seq, members in groups.items():
        first = members[0]
        gallery = "unknown" if first.gallery_size is None else f"{first.gallery_size:,}"
        inner = "".join(_lead_block(l, csrf_token, probe_url(l), candidate_url(l), missing(l) if l.status == "pending" else "",
                                    may_decide(l)) for l in members)
        blocks.append(f"""<section class="search" id="search-{seq}">
<h3>Search (log record {seq}): {_esc(first.operation)} in {_esc(first.collection_id or '-')}, case {_esc(first.case_reference or '-')}</h3>
<p class="muted">by {_esc(first.requested_by_person or first.requested_by)} at {_esc(_when(first.created_at))} UTC;
threshold {first.threshold:g}; {first.candidates} candidate(s) returned from a gallery of {gallery} face(s)</p>
{inner}</section>""")
    empty = "" if blocks else f'<p id="empty">No {_esc(status)} leads.</p>'
    notice_html = f'<p class="notice" id="flash">{_esc(notice)}</p>' if notice else ""
    tabs = " ".join(f'<a href="/review?status={s}">{s}</a>' for s in ("pending", "confirmed", "rejected"))
    who = f"{reviewer.person or '(no person: may not decide)'} ({reviewer.key_id})"
    return f"""{_HEAD}
<title>faceaudit review: {_esc(status)} leads</title><style>{_CSS}</style></head><body>
<header><h1>faceaudit: human review of leads</h1><nav>signed in as <b id="reviewer">{_esc(who)}</b> {tabs}
<form method="post" action="/review/logout"><input type="hidden" name="csrf" value="{_esc(csrf_token)}">
<button class="link" type="submit" id="signout">sign out</button></form></nav></header>
<main>
<p class="notice" id="lead-notice">{_esc(LEAD_NOTICE)}</p>
<p class="muted">A lead becomes <b>confirmed</b> only after {CONFIRMATIONS_REQUIRED} different people
confirm it; one rejection rejects it; the person who ran a search may not review its leads. Every
decision is written to the tamper-evident search log.</p>
{notice_html}
<form class="filter" method="get" action="/review"><input type="hidden" name="status" value="{_esc(status)}">
<label>Collection<br><input name="collection" value="{_esc(collection)}"></label>
<label>Case<br><input name="case" value="{_esc(case)}"></label>
<button type="submit">Filter</button></form>
<h2>{_esc(status.capitalize())} leads ({len(leads)} in {len(groups)} search(es))</h2>
{empty}{''.join(blocks)}
</main></body></html>"""


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _img(url: Optional[str], alt: str, caption: str, absent: str) -> str:
    if url:
        body = f'<img src="{_esc(url)}" alt="{_esc(alt)}">'
    else:
        body = f'<div class="noimg">{_esc(absent)}</div>'
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>"


def _lead_block(lead: Lead, csrf: str, probe: Optional[str], cand: Optional[str], missing: str,
                may_decide: bool) -> str:
    confirms = [d for d in lead.decisions if d.decision == "confirm"]
    history = "".join(
        f"<li>{_esc(d.reviewer)}: {_esc(d.decision)} at {_esc(_when(d.time))} UTC"
        f"{' (' + _esc(d.note) + ')' if d.note else ''}</li>"
        for d in lead.decisions
    ) or "<li>none yet</li>"
    candidate_name = lead.candidate_external_image_id or lead.candidate_user_id or lead.candidate_face_id or "-"
    hidden = "shown only to a person deciding on this lead"
    probe_absent = "probe image not kept" if missing.startswith("the probe") else hidden
    cand_absent = missing if (missing and not missing.startswith("the probe")) else hidden
    if lead.status != "pending":
        form = ""
    elif not may_decide:
        form = ('<p class="muted">You may not decide on this lead: you ran the search, or you have '
                'decided already (a different person must decide next).</p>')
    else:
        confirm = ("" if missing else
                   '<button class="confirm" name="decision" value="confirm" type="submit">Confirm lead</button>')
        blocked = (f'<p class="blocked">Cannot be confirmed: {_esc(missing)}. It can only be rejected.</p>'
                   if missing else "")
        form = f"""{blocked}<form class="decide" method="post" action="/review/leads/{_esc(lead.lead_id)}/decision">
<input type="hidden" name="csrf" value="{_esc(csrf)}">
<input type="text" name="note" placeholder="note: what corroborates or contradicts this lead" maxlength="2000">
{confirm}<button class="reject" name="decision" value="reject" type="submit">Reject lead</button></form>"""
    return f"""<section class="lead" id="lead-{_esc(lead.lead_id)}" data-status="{_esc(lead.status)}" data-confirmable="{'no' if missing else 'yes'}">
<div class="pair">{_img(probe, "probe image", "probe (searched image)", probe_absent)}
{_img(cand, "candidate image", f"candidate #{lead.rank}: " + candidate_name, cand_absent)}
<dl class="facts">
<dt>Similarity</dt><dd class="similarity">{lead.similarity:.2f} (0-100, higher is more alike); rank {lead.rank} of {lead.candidates}</dd>
<dt>Threshold of the search</dt><dd>{lead.threshold:g}</dd>
<dt>What this threshold means (false-match rate)</dt><dd>{_esc(measured_fmr(lead.model_version, lead.threshold))}</dd>
<dt>Status</dt><dd class="status-{_esc(lead.status)}">{_esc(lead.status)} ({len(confirms)} of {CONFIRMATIONS_REQUIRED} confirmations)</dd>
<dt>Decisions</dt><dd><ul>{history}</ul></dd>
</dl></div>
<p class="notice">Not an identification: an investigative lead that needs independent corroboration.</p>
{form}</section>"""
