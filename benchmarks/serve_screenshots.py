"""The screenshots of docs/serve/: `gankit serve` on real runs, driven in Debian's headless chromium by Playwright.

    gankit train --config digits --steps 300 --out runs --name dcgan-digits && gankit eval runs/dcgan-digits
    python benchmarks/serve_screenshots.py runs/dcgan-digits [MORE_RUNS ...] --out docs/serve

Writes OUT/explore.png (the grid, kept samples, a slider moved, a point between two), OUT/arithmetic.png,
OUT/inpaint.png, OUT/progress.png (the run page) and OUT/compare.png; an existing file is refused unless --force.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from gankit import outputs
from gankit.serve import server

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NAMES = ("explore", "arithmetic", "inpaint", "progress", "compare")


def slide(page, selector: str, value: float) -> None:
    page.eval_on_selector(selector, "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", value)


def explorer(page, base: str, rid: str, out: Path) -> None:
    page.goto(f"{base}/runs/{rid}")
    expect(page.locator("#grid .tile img")).to_have_count(16)
    for i in (0, 3, 5, 6):
        page.locator("#grid .tile").nth(i).click()
    expect(page.locator("#kept .item")).to_have_count(4)
    before = page.get_attribute("#edit-image", "src") or ""
    slide(page, "#dir-0", 2.0)
    expect(page.locator("#edit-image")).not_to_have_attribute("src", before)
    slide(page, "#t", 0.5)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "explore.png"), full_page=True)
    for i, slot in enumerate("ABC"):
        page.locator("#kept .item").nth(i).locator(f"button.to-{slot}").click()
    page.click("#arith-go")
    page.wait_for_selector("#arith-result img")
    page.locator("#arith-section").screenshot(path=str(out / "arithmetic.png"))
    page.click("#mask-center")
    page.click("#inpaint-go")
    page.wait_for_selector("#inpaint-completed img")
    page.locator("#inpaint-section").screenshot(path=str(out / "inpaint.png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders; the first one is explored")
    ap.add_argument("--out", default="docs/serve", help="folder for the PNGs [docs/serve]")
    ap.add_argument("--force", action="store_true", help="replace existing screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    outputs.check_new("serve_screenshots", *(out / f"{n}.png" for n in NAMES), force=args.force)
    out.mkdir(parents=True, exist_ok=True)
    srv, sock = server(args.runs, "127.0.0.1", 0, 1)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    base, rid = f"http://127.0.0.1:{sock.getsockname()[1]}", next(iter(srv.config.app.state.runs))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            explorer(page, base, rid, out)
            page.goto(f"{base}/runs/{rid}/progress")
            page.wait_for_selector("svg.plot polyline[data-key=loss_d]")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / "progress.png"), full_page=True)
            page.goto(f"{base}/compare")
            page.wait_for_selector("#compare-table")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "compare.png"), full_page=True)
            browser.close()
    finally:
        srv.should_exit = True
        thread.join(10)
    print("\n".join(str(out / f"{n}.png") for n in NAMES))


if __name__ == "__main__":
    main()
