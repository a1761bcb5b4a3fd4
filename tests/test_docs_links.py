"""Every relative link and image of README.md and docs/ points at a file of the repository: a
page moved into docs/ that kept its old relative paths shows broken images on GitHub, and no
code block catches it."""

from __future__ import annotations

import re

import pytest
from docs_blocks import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # [text](target) and ![alt](target)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative_links(page):
    for target in LINK.findall(page.read_text()):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not files
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    missing = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_the_pages_do_link_files():
    """The pattern finds links at all (a broken pattern would pass every page)."""
    assert "docs/results/README.md" in set(relative_links(ROOT / "README.md"))
