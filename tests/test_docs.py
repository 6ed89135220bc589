"""Every relative link and path cited in README.md, docs/*.md and the sources resolves to a file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CITED = re.compile(r"(?<![\w./-])((?:\.\./shared/|docs/|scripts/|src/|tests/|examples/)[\w./-]*\w)")
SHARED = (ROOT / ".." / "shared").resolve()


def _exists(base: Path, target: str) -> bool:
    path = (base / target.split("#")[0]).resolve()
    if not path.is_relative_to(ROOT) and path.is_relative_to(SHARED) and not SHARED.is_dir():
        return True  # the project's shared docs beside the repository: not in a bare checkout
    return path.exists()


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for doc in DOCS:
        for m in LINK.finditer(doc.read_text()):
            target = m.group(1)
            if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not _exists(doc.parent, target):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_path_cited_in_the_docs_and_sources_exists():
    texts = [(d, d.read_text()) for d in DOCS]
    texts += [(p, p.read_text()) for p in sorted((ROOT / "src").rglob("*.py"))]
    missing = []
    for path, text in texts:
        for m in CITED.finditer(text):
            target = m.group(1).rstrip(".")
            if "*" in target or "<" in target:
                continue
            if not _exists(ROOT, target):
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert missing == []
