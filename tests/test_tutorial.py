"""docs/TUTORIAL.md shows exactly the commands docs/tutorial.sh runs (CI runs it with --quick)."""

from __future__ import annotations

import re
import shlex

from conftest import REPO

TUTORIAL = REPO / "docs" / "TUTORIAL.md"
SCRIPT = REPO / "docs" / "tutorial.sh"


def _joined(lines: list[str]) -> list[str]:
    """Lines with ``\\`` continuations joined and whitespace normalised; blanks and comments out."""
    out: list[str] = []
    pending = ""
    for line in lines:
        line = line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(" ".join((pending + line).split()))
        pending = ""
    return out


def _markdown_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text("utf-8"), re.S)
    return _joined([line for block in blocks for line in block.splitlines()])


def _script_commands() -> list[str]:
    """The script's commands after ``set -x``, with its full (not --quick) settings expanded."""
    text = SCRIPT.read_text("utf-8")
    full = text.split("\nelse\n", 1)[1].split("\nfi\n", 1)[0]
    settings = dict(re.findall(r"^\s*(\w+)=\((.*)\)$", full, re.M))
    body = text.split("\nset -x\n", 1)[1]
    body = re.sub(r'"\$REPO/([^"]*)"', r"\1", body)
    for name, value in settings.items():
        body = body.replace(f'"${{{name}[@]}}"', value)
    return _joined(body.splitlines())


def test_tutorial_commands_are_the_scripts():
    markdown, script = _markdown_commands(), _script_commands()
    assert markdown == script
    assert sum(c.startswith("ddsp-augment ") for c in script) == 6
    for command in script:
        shlex.split(command.replace("{", "").replace("}", ""))  # well-formed shell words


def test_tutorial_pictures_exist_and_are_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", TUTORIAL.read_text("utf-8"))
    assert len(pictures) >= 4
    sizes = [(TUTORIAL.parent / p).stat().st_size for p in pictures]
    assert sum(sizes) < 1.5e6
    leftovers = re.findall(r"\b(?:TABLE|EXPLAIN)_[A-Z0-9]+\b", TUTORIAL.read_text("utf-8"))
    assert not leftovers
