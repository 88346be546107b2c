"""The documentation cites what a reader can open (issue 23, item 8): every relative link in
README.md and docs/ points at a file of this repository, and no page cites the project's
private notes (files outside the repository, or their section tags) instead of the public
source itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

# Names of notes that live outside the repository, and the tags they were cited by.
PRIVATE = re.compile(
    r"shared/reference|/work/|zai-fidelity|wire-specs|user-demand|wave3-demand|"
    r"peers-and-edge-cases|seed-glm|style-anchors|\bTHINK53\b|\bOAS\b|\bDEVPACK\b|\bTMODE\b"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)  # code is not a link


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown page that are paths (not URLs, not in-page anchors)."""
    targets = [m.group(1) for m in LINK.finditer(CODE.sub("", text))]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_exist(page: Path) -> None:
    for target in relative_links(page.read_text(encoding="utf-8")):
        path = (page.parent / target.partition("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to a missing file: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_notes_are_cited(page: Path) -> None:
    found = [
        f"{n}: {m.group(0)}"
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        for m in PRIVATE.finditer(line)
    ]
    assert not found, f"{page.name} cites notes a reader cannot open: {found}"


def test_the_checks_catch_what_they_are_for() -> None:
    assert relative_links("see [x](../../shared/reference/user-demand.md) and [y](https://a.b)")
    assert relative_links("[z](#anchor) [w](mailto:a@b.c) `[v](<url>)`") == []
    assert PRIVATE.search("(zai-fidelity 2.1)") and PRIVATE.search("wire-specs A.9")
    assert not PRIVATE.search("docs.z.ai OpenAPI; zai-org/GLM-4#802")
