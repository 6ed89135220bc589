"""README.md's shell commands work as typed after the Quick start: every `.venv/bin/faceaudit ...` line parses,
and every file it names exists in a fresh clone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from faceaudit.cli._main import build_parser

ROOT = Path(__file__).resolve().parents[2]
PRODUCED = ("out/", "key.json")
"""Paths the README's own commands create before they are used."""


def readme_commands():
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip()
            if line.startswith(".venv/bin/faceaudit"):
                yield line


def test_readme_has_commands_as_typed():
    commands = list(readme_commands())
    assert len(commands) >= 5
    text = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in text and "chromium" in text
    # no shell block types a bare `faceaudit` (it is inside .venv)
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            assert not line.lstrip().startswith("faceaudit "), line


@pytest.mark.parametrize("line", list(readme_commands()))
def test_readme_command_parses_and_names_real_files(line):
    words = shlex.split(line)
    if ">" in words:  # output redirected to a file the command creates
        words = words[: words.index(">")]
    args = build_parser().parse_args(words[1:])
    assert callable(args.handler)
    for w in words[1:]:
        if ("/" in w or w.endswith(".csv")) and not w.startswith(("-", "http")) and not w.startswith(PRODUCED):
            assert (ROOT / w).exists(), f"{w} (in: {line})"
