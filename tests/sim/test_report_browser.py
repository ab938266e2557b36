"""The report page as a person sees it: headless Chromium at 800 px wide opens the page a run
wrote, the summary is there and readable (nothing wider than the window), and a screenshot is
taken (build/test-screens/report-800.png, to look at).

The browser is Debian's chromium (`make browser` installs it when missing; `make test` runs
that first), driven by Playwright (pinned in requirements.lock) through its executable path:
nothing is downloaded at run time."""

import shutil
from pathlib import Path

from PIL import Image

from sim.cli import run_scenario

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "no chromium: `make browser` installs Debian's (make test runs it first)"
    return path


def test_the_report_reads_at_800_px_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report"
    code, _, result, text = run_scenario(ROOT / "examples" / "scenarios" /
                                         "refill_concentration.toml", report_dir=out)
    assert code == 0
    page_html = (out / "index.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page_html
    shot = ROOT / "build" / "test-screens" / "report-800.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 1000})
            page.goto((out / "index.html").as_uri())
            summary = page.locator("#summary")
            assert summary.is_visible()
            shown = summary.inner_text()
            assert "Delivered" in shown and "6 mg" in shown and "Limits" in shown
            box = summary.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 800
            assert page.evaluate("document.documentElement.scrollWidth") <= 800
            for img in page.locator("img").all():
                assert img.evaluate("i => i.complete && i.naturalWidth > 0")
                assert img.bounding_box()["width"] <= 800
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    with Image.open(shot) as im:
        assert im.size == (800, 1000)
        assert len(im.convert("L").getcolors(1 << 16) or []) > 20   # a page, not a blank
