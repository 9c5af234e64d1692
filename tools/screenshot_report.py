"""Make docs/img/report.png, the README's picture of the HTML report, from the shipped example.

    python tools/screenshot_report.py                      # runs specs/digits.yaml on rk3588 first (~1 min warm)
    python tools/screenshot_report.py --results run.json   # from a results file you have

Runs the example with --edge-results (unless given one), writes the HTML report, opens it in headless Chromium
(tests/chromium.py; apt-get install chromium) and keeps two parts of the first section, one above the other: the
top of the page with the first rows of the budget table, and the plots (accuracy against size, latency).
Needs the dev extra (matplotlib, and pillow, which matplotlib brings).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from chromium import Chromium, find_chromium  # noqa: E402

# the page's y coordinates of the two parts: to the end of the budget table's 4th row; the first section's plots
PARTS = """(() => {
  const top = document.querySelector('section');
  const rows = top.querySelectorAll('tbody tr');
  const end = rows.length ? rows[Math.min(rows.length, 4) - 1].getBoundingClientRect().bottom
                          : top.querySelector('p').getBoundingClientRect().bottom;
  const plots = top.querySelectorAll('svg.plot');
  const first = [...top.querySelectorAll('h3')].find(h => /against size/.test(h.textContent));
  const last = plots[Math.min(plots.length, 2) - 1];
  return JSON.stringify([end + scrollY + 1, first ? first.getBoundingClientRect().top + scrollY - 4 : null,
                         last ? last.getBoundingClientRect().bottom + scrollY + 8 : null]);
})()"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="a results JSON (default: run the example now)")
    parser.add_argument("--target", default="rk3588", help="the example's target to run (default rk3588)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "report.png")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        print("no Chromium found: apt-get install chromium (or set EDGECHECK_CHROMIUM)", file=sys.stderr)
        return 2
    from PIL import Image

    from edgecheck.report.html import write_html
    from edgecheck.results import read_results_document

    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or Path(scratch) / "results.json"
        if args.results is None:
            subprocess.run([sys.executable, "-m", "pytest", "specs/digits.yaml", f"--edge-target={args.target}",
                            f"--edge-results={results}", "-p", "no:cacheprovider", "-q", "-n", "4"], cwd=ROOT,
                           check=False)
        page = Path(scratch) / "report.html"
        print(write_html(page, read_results_document(results)))
        with Chromium(binary, width=args.width, height=900) as browser:
            browser.resize(args.width, 900)
            browser.open(page.as_uri())
            if browser.problems():
                print("the page had problems:", *browser.problems(), sep="\n  ", file=sys.stderr)
                return 1
            # the whole page in one viewport, so the coordinates and the picture share one layout
            browser.resize(args.width, int(browser.evaluate("document.documentElement.scrollHeight")))
            table_end, plots_top, plots_end = json.loads(browser.evaluate(PARTS))
            shot = Path(scratch) / "page.png"
            browser.screenshot(shot)
        whole = Image.open(shot)
        parts = [whole.crop((0, 0, whole.width, int(table_end)))]
        if plots_top is not None and plots_end is not None:
            parts.append(whole.crop((0, int(plots_top), whole.width, int(plots_end))))
        gap = 12
        out = Image.new("RGB", (whole.width, sum(p.height for p in parts) + gap * (len(parts) - 1)), "#d0d7de")
        y = 0
        for part in parts:
            out.paste(part, (0, y))
            y += part.height + gap
        args.output.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        out.save(buffer, "PNG", optimize=True)
        args.output.write_bytes(buffer.getvalue())
    print(f"{args.output}: {out.width}x{out.height}, {len(buffer.getvalue()) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
