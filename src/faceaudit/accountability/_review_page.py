"""The review web page: probe and candidate side by side, with what the numbers mean.

Pure rendering (no I/O): the service passes the leads, the reviewer, a CSRF
token and image URLs; this module returns self-contained HTML (no network).
"""

from __future__ import annotations

import html
import time
from typing import Callable, Iterable, Optional

from faceaudit.accountability._review import CONFIRMATIONS_REQUIRED, LEAD_NOTICE, Lead


def measured_fmr(model_version: str, threshold: float) -> str:
    """What ``threshold`` means: the false-match rate the scale promises, and the model's measured one.

    The measured figure is counted on the model's calibration pairs (strangers'
    official portraits and mugshots), with its Wilson 95% interval.
    """
    from faceaudit._errors import FaceAuditError
    from faceaudit.engine import get_model, promised_fmr

    promise = (f"Similarity {threshold:g} promises a false-match rate of {_pct(promised_fmr(threshold))} "
               f"per comparison (1 in {1 / promised_fmr(threshold):,.0f})")
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f1;color:#1d1d1b}
header{background:#1d1d1b;color:#fff;padding:12px 24px;display:flex;justify-content:space-between;align-items:center}
header h1{font-size:20px;margin:0}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
.notice{background:#fff4d6;border:2px solid #c98a00;padding:10px 14px;margin:12px 0;font-weight:600}
.lead{background:#fff;border:1px solid #ccc;border-radius:6px;margin:16px 0;padding:14px}
.pair{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.pair figure{margin:0;text-align:center}
.pair img{width:240px;height:300px;object-fit:contain;background:#ddd;border:1px solid #999}
.noimg{width:240px;height:300px;background:#ddd;border:1px dashed #999;display:flex;align-items:center;justify-content:center;color:#555}
.pair figcaption{font-size:13px;color:#444;margin-top:4px}
.facts{flex:1;min-width:280px}
.facts dt{font-weight:600;margin-top:6px}
.facts dd{margin:0 0 0 0}
.status-pending{color:#8a5a00}.status-confirmed{color:#0a6b2d}.status-rejected{color:#a11}
form.decide{margin-top:10px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
form.decide input[type=text]{flex:1;min-width:200px;padding:6px}
button{padding:8px 16px;font-size:15px;border-radius:4px;border:1px solid #333;cursor:pointer}
button.confirm{background:#0a6b2d;color:#fff}button.reject{background:#a11;color:#fff}
.muted{color:#666;font-size:13px}
nav a{color:#fff;margin-left:14px}
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def render_login(message: str = "") -> str:
    """The sign-in page: an access key id and secret (operator or admin role)."""
    msg = f'<p class="notice">{_esc(message)}</p>' if message else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>faceaudit review: sign in</title><style>{_CSS}</style></head><body>
<header><h1>faceaudit: human review of leads</h1></header><main>{msg}
<form method="post" action="/review/login" id="login">
<p><label>Access key id<br><input name="access_key_id" id="access_key_id" size="40" autocomplete="username"></label></p>
<p><label>Secret access key<br><input name="secret" id="secret" type="password" size="50" autocomplete="current-password"></label></p>
<p><button type="submit" id="signin">Sign in</button></p>
</form><p class="muted">Reviewers sign in with their own key: each decision is logged under it.</p>
</main></body></html>"""


def render_review_page(
    leads: Iterable[Lead],
    reviewer: str,
    csrf_token: str,
    probe_url: Callable[[Lead], Optional[str]],
    candidate_url: Callable[[Lead], Optional[str]],
    status: str = "pending",
    flash: str = "",
) -> str:
    """The list of leads of one status, each with probe | candidate and the decision buttons."""
    leads = list(leads)
    blocks = [_lead_block(l, reviewer, csrf_token, probe_url(l), candidate_url(l)) for l in leads]
    empty = "" if blocks else f'<p id="empty">No {_esc(status)} leads.</p>'
    flash_html = f'<p class="notice" id="flash">{_esc(flash)}</p>' if flash else ""
    tabs = " ".join(
        f'<a href="/review?status={s}">{s}</a>' for s in ("pending", "confirmed", "rejected")
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>faceaudit review: {_esc(status)} leads</title><style>{_CSS}</style></head><body>
<header><h1>faceaudit: human review of leads</h1><nav>signed in as <b id="reviewer">{_esc(reviewer)}</b> {tabs}
<a href="/review/logout">sign out</a></nav></header>
<main>
<p class="notice" id="lead-notice">{_esc(LEAD_NOTICE)}</p>
<p class="muted">A lead becomes <b>confirmed</b> only after {CONFIRMATIONS_REQUIRED} different reviewers
confirm it; one rejection rejects it. Every decision is written to the tamper-evident search log.</p>
{flash_html}<h2>{_esc(status.capitalize())} leads ({len(leads)})</h2>
{empty}{''.join(blocks)}
</main></body></html>"""


def _img(url: Optional[str], alt: str, caption: str) -> str:
    if url:
        body = f'<img src="{_esc(url)}" alt="{_esc(alt)}">'
    else:
        body = f'<div class="noimg">{_esc(alt)}: not kept</div>'
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>"


def _lead_block(lead: Lead, reviewer: str, csrf: str, probe: Optional[str], cand: Optional[str]) -> str:
    confirms = [d for d in lead.decisions if d.decision == "confirm"]
    decided = any(d.reviewer == reviewer for d in lead.decisions)
    history = "".join(
        f"<li>{_esc(d.reviewer)}: {_esc(d.decision)} at "
        f"{_esc(time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(d.time)))} UTC"
        f"{' (' + _esc(d.note) + ')' if d.note else ''}</li>"
        for d in lead.decisions
    ) or "<li>none yet</li>"
    candidate_name = lead.candidate_external_image_id or lead.candidate_user_id or lead.candidate_face_id or "-"
    if lead.status != "pending":
        form = ""
    elif decided:
        form = '<p class="muted">You have decided on this lead; a different reviewer must decide next.</p>'
    else:
        form = f"""<form class="decide" method="post" action="/review/leads/{_esc(lead.lead_id)}/decision">
<input type="hidden" name="csrf" value="{_esc(csrf)}">
<input type="text" name="note" placeholder="note: what corroborates or contradicts this lead" maxlength="2000">
<button class="confirm" name="decision" value="confirm" type="submit">Confirm lead</button>
<button class="reject" name="decision" value="reject" type="submit">Reject lead</button></form>"""
    return f"""<section class="lead" id="lead-{_esc(lead.lead_id)}" data-status="{_esc(lead.status)}">
<div class="pair">{_img(probe, "probe image", "probe (searched image)")}
{_img(cand, "candidate image", "candidate: " + candidate_name)}
<dl class="facts">
<dt>Similarity</dt><dd class="similarity">{lead.similarity:.2f} (0-100, higher is more alike)</dd>
<dt>Threshold of the search</dt><dd>{lead.threshold:g}</dd>
<dt>What this threshold means (false-match rate)</dt><dd>{_esc(measured_fmr(lead.model_version, lead.threshold))}</dd>
<dt>Status</dt><dd class="status-{_esc(lead.status)}">{_esc(lead.status)} ({len(confirms)} of {CONFIRMATIONS_REQUIRED} confirmations)</dd>
<dt>Search</dt><dd>{_esc(lead.operation)} in {_esc(lead.collection_id or '-')}, by {_esc(lead.requested_by)},
case {_esc(lead.case_reference or '-')}, log record {lead.search_seq}</dd>
<dt>Decisions</dt><dd><ul>{history}</ul></dd>
</dl></div>
<p class="notice">Not an identification: an investigative lead that needs independent corroboration.</p>
{form}</section>"""
