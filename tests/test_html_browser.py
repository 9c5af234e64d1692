"""The HTML report in a real headless Chromium (tests/chromium.py drives it over the DevTools protocol): the page
of a real run, and pages of every kind of record and of hostile strings, load from a file:// URL with no console
error or warning, no exception, no request but the file itself; every plot renders with a size; a narrow window
scrolls no wider than itself; a screenshot is taken."""

from __future__ import annotations

import pytest

from chromium import Chromium, find_chromium
from edgecheck.report.html import write_html
from edgecheck.results import read_results_document, results_document
import test_html as cases  # its helpers only: importing its tests by name would collect them twice here

BINARY = find_chromium()
pytestmark = pytest.mark.skipif(BINARY is None, reason="no Chromium found (apt-get install chromium, or set "
                                                        "EDGECHECK_CHROMIUM to a Chrome or Chromium binary)")

PLOTS = """JSON.stringify([...document.querySelectorAll('svg.plot')].map(e => {
  const r = e.getBoundingClientRect(); return [r.width, r.height, e.querySelectorAll('path, use, text').length]; }))"""


def check_page(browser: Chromium, page, plots: int, shot) -> None:
    import json

    browser.resize(1280, 900)
    before = len(browser.events)
    browser.open(page.as_uri())
    new = browser.events[before:]
    problems = Chromium.problems_of(new)
    assert problems == [], problems
    requests = [params["request"]["url"] for method, params in new if method == "Network.requestWillBeSent"]
    assert requests == [page.as_uri()]  # nothing but the file itself: no font, script, image or stylesheet
    assert not [m for m, _ in new if m == "Page.javascriptDialogOpening"]
    assert browser.evaluate("document.querySelectorAll('script, img, iframe').length") == 0
    boxes = json.loads(browser.evaluate(PLOTS))
    assert len(boxes) == plots
    assert all(width > 100 and height > 100 and drawn > 10 for width, height, drawn in boxes), boxes
    browser.screenshot(shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    browser.resize(400, 800)  # a phone: the tables scroll inside their boxes, the page itself does not
    width, inner = browser.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner
    boxes = json.loads(browser.evaluate(PLOTS))
    assert all(0 < w <= 400 and h > 0 for w, h, _ in boxes), boxes


@pytest.fixture(scope="module")
def browser():
    with Chromium(BINARY) as opened:
        yield opened


def test_the_page_of_a_real_run_loads_offline_renders_every_plot_and_screenshots(browser, pytester, spec_project,
                                                                                 tmp_path):
    spec_project(cases.SPEC.replace("size_mb: 0.0003", "size_mb: 0.0003\n      latency_ms: {p95: 50, warmup_s: 0.05}"))
    pytester.runpytest("specs", "--edge-html=report.html", "--edge-results=results.json").assert_outcomes(
        passed=5, failed=2)
    check_page(browser, pytester.path / "report.html", 2, tmp_path / "run.png")
    again = tmp_path / "again.html"
    write_html(again, read_results_document(pytester.path / "results.json"))
    check_page(browser, again, 2, tmp_path / "again.png")


def test_pages_of_every_kind_and_of_hostile_strings_load_cleanly(browser, tmp_path):
    kinds, hostile = tmp_path / "kinds.html", tmp_path / "hostile.html"
    write_html(kinds, results_document(cases.every_kind()))
    write_html(hostile, results_document(cases.hostile_records()))
    check_page(browser, kinds, 6, tmp_path / "kinds.png")
    check_page(browser, hostile, hostile.read_text().count('<svg class="plot"'), tmp_path / "hostile.png")
    assert browser.evaluate("document.title").startswith("edgecheck: ")
    assert "<script>alert(1)</script>" in browser.evaluate("document.body.innerText")  # shown as text
