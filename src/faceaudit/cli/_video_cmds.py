"""``faceaudit video search|detect``: faces in a local video file (MP4, MOV, AVI, MKV).

``video search`` is a face search of everyone in the footage: it needs a warrant
or court-order reference (``--warrant``) unless the collection's video-search
policy says otherwise, and every person found is logged, each match becoming a
lead with the frame as its probe image (as StartFaceSearch over HTTP). With
``--json`` the output is GetFaceSearch's (GetFaceDetection's) response.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid

from faceaudit.cli._output import print_json, print_table

_DATA_DIR_HELP = "data dir (default $FACEAUDIT_DATA_DIR, else ~/.local/share/faceaudit)"


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("video", help="find or search the faces in a stored video file")
    s = g.add_subparsers(dest="video_command", metavar="ACTION")
    s.required = True
    p = s.add_parser(
        "search", help="search a collection for everyone in a video (needs --warrant; logged)",
        description="Follow every person through the video (one Index each), search each person's "
                    "best frames in the collection and print the matches with their time ranges. "
                    "Each match is an investigative lead, not an identification.")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("video", metavar="VIDEO", help="a video file (MP4, MOV, AVI, MKV)")
    p.add_argument("--warrant", default="", metavar="REF",
                   help="the warrant or court order authorising the search (logged; required unless "
                        "the collection's video-search policy says otherwise)")
    p.add_argument("--threshold", type=float, default=None,
                   help="FaceMatchThreshold, similarity 0-100 (default 80: a false-match rate of about "
                        "1 in 100,000 per comparison)")
    _common(p)
    p.add_argument("--case-reference", default="", help="case this search belongs to (logged)")
    p.add_argument("--purpose", default="", help="why the search is made (logged)")
    p.set_defaults(handler=cmd_video_search)
    p = s.add_parser("detect", help="the faces of the sampled frames of a video (no search, not logged)")
    p.add_argument("video", metavar="VIDEO", help="a video file (MP4, MOV, AVI, MKV)")
    _common(p)
    p.set_defaults(handler=cmd_video_detect)
    p = s.add_parser("policy", help="whether a collection's video face searches need a warrant "
                                    "(as the local admin; logged)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("--warrant-required", choices=["yes", "no"], default=None,
                   help="set the policy (default: show it); the default policy requires a warrant")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the policy as JSON")
    p.set_defaults(handler=cmd_video_policy)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=float, default=None, metavar="N",
                   help="frames analysed per second of video (default 2, 0.1-30)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the Rekognition Get* response (one line)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


class _Progress:
    """Progress lines on stderr, at most one per 2 s, and a closing 100% line once any was shown
    (a short video otherwise ended on its first line: "video:   6%")."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0
        self.shown = False

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if not self.quiet and now - self.last >= 2.0:
            self.last = now
            self.shown = True
            sys.stderr.write(f"video: {100 * fraction:3.0f}%  {message}\n")
            sys.stderr.flush()

    def finish(self, seconds: float) -> None:
        if self.shown:
            sys.stderr.write(f"video: 100%  analysed {seconds:.1f} s of {seconds:.1f} s\n")
            sys.stderr.flush()


def cmd_video_search(args) -> int:
    from faceaudit._defaults import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_VIDEO_MAX_FACES
    from faceaudit.accountability import CallerContext
    from faceaudit.cli import _context
    from faceaudit.collections import CANDIDATE_NOTICE

    fc = _context.collections(args)
    videos = _context.video_searches(args, fc=fc)
    ctx = CallerContext(f"local:{getpass.getuser()}", role="operator", source="cli",
                        # as the HTTP path does: the warrant is the leads' case reference unless one is given
                        case_reference=args.case_reference or args.warrant, purpose=args.purpose)
    job_id = "local-" + uuid.uuid4().hex
    progress = _Progress(args.quiet)
    threshold = DEFAULT_FACE_MATCH_THRESHOLD if args.threshold is None else args.threshold
    found = videos.start(
        ctx, args.warrant, collection_id=args.collection_id, threshold=threshold,
        max_faces=DEFAULT_VIDEO_MAX_FACES, video=args.video, job_id_of=lambda _: job_id,
        call=lambda: fc.search_faces_in_video(
            collection_id=args.collection_id, path=args.video, face_match_threshold=args.threshold,
            sample_fps=args.fps, progress=progress),
    )
    progress.finish(found.metadata.duration_millis / 1000)
    videos.record(ctx, args.warrant, job_id, args.video, found)
    if args.json:
        print_json({"JobStatus": "SUCCEEDED", "VideoMetadata": found.metadata.to_rekognition(),
                    "Persons": [i.to_rekognition() for i in found.items]})
        return 0
    meta = found.metadata
    print(f"{args.video}: {meta.duration_millis / 1000:.1f} s, {meta.frame_width}x{meta.frame_height}, "
          f"{found.sample_fps:g} frames analysed per second; {len(found.persons)} people seen, "
          f"searched in {found.collection_id!r} at similarity >= {found.threshold:g} (0-100)")
    rows = []
    for p in found.persons:
        best = p.matches[0] if p.matches else None
        rows.append([p.index, f"{p.first_ms / 1000:.1f}-{p.last_ms / 1000:.1f} s", p.sightings,
                     len(p.matches),
                     best.face.external_image_id or best.face.face_id if best else "-",
                     best.similarity if best else "-"])
    print_table(["Index", "Seen", "Frames", "Matches", "Best candidate", "Similarity"], rows)
    print(CANDIDATE_NOTICE)
    return 0


def cmd_video_detect(args) -> int:
    from faceaudit.cli import _context

    progress = _Progress(args.quiet)
    found = _context.collections(args).detect_faces_in_video(
        args.video, sample_fps=args.fps, progress=progress)
    progress.finish(found.metadata.duration_millis / 1000)
    if args.json:
        print_json({"JobStatus": "SUCCEEDED", "VideoMetadata": found.metadata.to_rekognition(),
                    "Faces": [i.to_rekognition() for i in found.items]})
        return 0
    per_time: dict = {}
    for item in found.items:
        per_time[item.timestamp_ms] = per_time.get(item.timestamp_ms, 0) + 1
    meta = found.metadata
    print(f"{args.video}: {meta.duration_millis / 1000:.1f} s, {meta.frame_width}x{meta.frame_height}, "
          f"{meta.codec}, {len(found.items)} faces in the frames analysed ({found.sample_fps:g} per second)")
    print_table(["Time (s)", "Faces"], [[f"{t / 1000:.1f}", n] for t, n in sorted(per_time.items())])
    return 0


def cmd_video_policy(args) -> int:
    from faceaudit.accountability import CallerContext, VideoSearchPolicy
    from faceaudit.cli import _context

    videos = _context.video_searches(args)
    if args.warrant_required is None:
        policy = videos.policy(args.collection_id)
    else:
        ctx = CallerContext(access_key_id=f"local:{getpass.getuser()}", role="admin", source="cli")
        policy = videos.set_policy(VideoSearchPolicy(args.collection_id, args.warrant_required == "yes"), ctx)
    if args.json:
        print_json(policy.to_json())
    else:
        print(f"{policy.collection_id}: video face searches "
              + ("need a warrant or court-order reference" if policy.warrant_required
                 else "need no warrant (the policy waives it)"))
    return 0
