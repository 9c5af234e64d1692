"""Every relative link in README.md and docs/*.md leads somewhere: the file (or folder) exists, and an anchor
(`page.md#heading`, `#heading`) names a heading of that page as GitHub makes its anchors. Links to web pages
are not fetched. Code blocks and code spans are not links."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)


def _blank(match: re.Match) -> str:
    """Text of the same lines, emptied: line numbers stay right."""
    return "\n" * match.group(0).count("\n")


def _prose(text: str) -> str:
    """The page without fenced code blocks, and with code spans reduced to a placeholder (their text is not
    markup: a `[x](y)` there is no link)."""
    text = _FENCE.sub(_blank, text)
    return _CODE_SPAN.sub(lambda m: "CODE" + "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger): the rendered text, lower case, every character that is
    not a letter, number, mark, connector, space or hyphen removed, spaces made hyphens."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text)                                               # inline HTML
    text = text.replace("`", "").replace("*", "")                                     # code and emphasis marks
    kept = "".join(ch for ch in text.lower()
                   if ch in " -_" or unicodedata.category(ch)[0] in "LNM" or unicodedata.category(ch) == "Pc")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives the headings of a Markdown page (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub(_blank, page.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and image on a page, outside code."""
    text = _prose(page.read_text(encoding="utf-8"))
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _LINK.finditer(text)]


def _problems(page: Path) -> tuple[list[str], list[str]]:
    """(broken links, links to pending files) of a page."""
    broken, pending = [], []
    for line, target in links(page):
        where = f"{page.relative_to(ROOT)}:{line}: {target}"
        if not target:
            broken.append(f"{where}: an empty link")
            continue
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            continue  # a web page or another scheme: not checked here
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / unquote(path_part)).resolve() if path_part else page
        if path_part.startswith("/"):
            broken.append(f"{where}: an absolute path (GitHub resolves it against the site, not the repository)")
            continue
        try:
            relative = linked.relative_to(ROOT).as_posix()
        except ValueError:
            broken.append(f"{where}: leads outside the repository")
            continue
        if not linked.exists():
            broken.append(f"{where}: no such file {relative}")
            continue
        if anchor and linked.suffix == ".md" and linked.is_file() and unquote(anchor) not in anchors(linked):
            broken.append(f"{where}: {relative} has no heading with the anchor #{anchor} "
                          f"(it has: {', '.join(sorted(anchors(linked)))})")
    return broken, pending


def test_the_pages_are_there():
    assert (ROOT / "README.md").is_file() and len(PAGES) > 5, PAGES
    assert sum(len(links(page)) for page in PAGES) > 50  # the parser finds the links (it would pass on none)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken, _ = _problems(page)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_pages_named_by_the_code_exist():
    """Messages, comments and workflows that send a user to a page (`docs/boards.md`) name one that exists."""
    named = {}
    sources = [*(ROOT / "edgecheck").rglob("*.py"), *(ROOT / "examples").glob("*.yaml"),
               *(ROOT / ".github").rglob("*.yml"), ROOT / ".ci" / "run", ROOT / "pyproject.toml"]
    for source in sources:
        text = source.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"(?<![\w/.-])docs/[\w./-]*?\.md\b", text):  # not inside a URL's path
            named.setdefault(match.group(0), source.relative_to(ROOT).as_posix())
    assert "docs/boards.md" in named  # `edgecheck boards` without boards points there
    missing = {page: source for page, source in named.items() if not (ROOT / page).is_file()}
    assert not missing, missing


def test_slugs_are_githubs():
    assert slug("Set-up: two commands on a fresh machine") == "set-up-two-commands-on-a-fresh-machine"
    assert slug("Operators, model facts and the latency estimate") == "operators-model-facts-and-the-latency-estimate"
    assert slug("`edgecheck boards`") == "edgecheck-boards"
    assert slug("What is checked") == "what-is-checked"
    assert slug("The board-rack job") == "the-board-rack-job"
    assert slug("Tests in Python beside the specs") == "tests-in-python-beside-the-specs"
    assert slug("A [linked](x.md) heading, ×2") == "a-linked-heading-2"


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Some `code` here\n")
    page = tmp_path / "README.md"
    page.write_text("See [a](docs/a.md), [b](docs/a.md#some-code-here), [c](docs/nope.md),\n"
                    "[d](docs/a.md#missing), [e](#a-heading) and [f](https://example.com/x).\n\n"
                    "```\n[not a link](nowhere.md)\n```\n`[nor this](nowhere.md)`\n\n## A heading\n")
    broken, pending = _problems(page)
    assert [b.split(": ")[1] for b in broken] == ["docs/nope.md", "docs/a.md#missing"], broken
    assert not pending
