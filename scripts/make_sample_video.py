#!/usr/bin/env python
"""Write the test suite's sample clip (8 s, 960x540, MPEG-4 in MP4): public-domain Congressional
portraits entering and leaving, two at once, a passer-by, and the first person coming back.

    .venv/bin/python scripts/make_sample_video.py doorbell.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv=None) -> int:
    from _support import VIDEO_SCRIPT, make_video

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = make_video(Path(args[0]))
    print(f"{path}: who is shown when (seconds):")
    for member, start, end, _ in VIDEO_SCRIPT:
        print(f"  {member}  {start:g}-{end:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
