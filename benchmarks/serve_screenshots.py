"""The screenshots of docs/serve/: `gankit serve` on real runs, driven in Debian's headless chromium by Playwright.

    gankit train --config digits --steps 300 --out runs --name dcgan-digits && gankit eval runs/dcgan-digits
    python benchmarks/serve_screenshots.py runs/dcgan-digits [MORE_RUNS ...] --out docs/serve \\
        --audio runs/audio/fsdd-specgan --predict runs/predict/smmnist-gan --points runs/guided/grid/s0

Writes OUT/explore.png (the grid, kept samples, a slider moved, a point between two), OUT/arithmetic.png,
OUT/inpaint.png, OUT/progress.png (the run page) and OUT/compare.png; with --audio OUT/audio.png (a recording run's
page: spectrograms and players, a slider moved), with --predict OUT/futures.png (a predict run's futures), with
--points OUT/points.png (a 2-D run's scatter plot, D-guided when the run has D). An existing file is refused unless
--force. Run it from the repository root: a predict run's held-out sequences are made from its config's data_dir,
which is relative to it.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from pathlib import Path

from PIL import Image
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


def small(path: Path) -> None:
    """128 colours, as gankit.audio's spectrogram sheets: a third of the bytes, no visible change."""
    with Image.open(path) as im:
        im = im.convert("RGB").quantize(128)
    im.save(path, format="PNG", optimize=True)


def image_pages(page, base: str, rid: str, out: Path) -> None:
    explorer(page, base, rid, out)
    page.goto(f"{base}/runs/{rid}/progress")
    page.wait_for_selector("svg.plot polyline[data-key=loss_d]")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "progress.png"), full_page=True)
    page.goto(f"{base}/compare")
    page.wait_for_selector("#compare-table")
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "compare.png"), full_page=True)


def audio_page(page, base: str, rid: str, out: Path) -> None:
    page.goto(f"{base}/runs/{rid}")
    page.fill("#n", "8")
    page.dispatch_event("#n", "change")
    expect(page.locator("#grid .tile audio")).to_have_count(8)
    for i in (0, 2):
        page.locator("#grid .tile").nth(i).click()
    expect(page.locator("#kept .item")).to_have_count(2)
    before = page.get_attribute("#edit-audio", "src") or ""
    slide(page, "#dir-0", 2.0)
    expect(page.locator("#edit-audio")).not_to_have_attribute("src", before)
    slide(page, "#t", 0.5)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "audio.png"), full_page=True)
    small(out / "audio.png")


def futures_page(page, base: str, rid: str, out: Path) -> None:
    page.goto(f"{base}/runs/{rid}")
    page.fill("#seq-index", "7")
    page.dispatch_event("#seq-index", "change")
    expect(page.locator("#futures-out figure.future img")).to_have_count(4)
    page.wait_for_timeout(1500)            # the GIFs a few frames in, past the context
    page.locator("#futures-section").screenshot(path=str(out / "futures.png"))
    small(out / "futures.png")


def points_page(page, base: str, rid: str, out: Path) -> None:
    page.goto(f"{base}/runs/{rid}")
    expect(page.locator("#scatter-image")).to_have_attribute("src", re.compile("^data:image/png"))
    guides = page.eval_on_selector_all("#points-guide option", "os => os.map(o => o.value)")
    if "drs" in guides:                    # D-guided: rejection sampling, as the run's D judges the points
        before = page.get_attribute("#scatter-image", "src")
        page.select_option("#points-guide", "drs")
        expect(page.locator("#scatter-image")).not_to_have_attribute("src", before)
    page.locator("#scatter-section").screenshot(path=str(out / "points.png"))
    small(out / "points.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="image run folders; the first one is explored (none: only --audio and "
                                            "--predict's pages)")
    ap.add_argument("--out", default="docs/serve", help="folder for the PNGs [docs/serve]")
    ap.add_argument("--audio", help="a run of recordings (wavegan, specgan) for audio.png")
    ap.add_argument("--predict", help="a run of task predict for futures.png")
    ap.add_argument("--points", help="a run on 2-D points (grid, ring) for points.png")
    ap.add_argument("--force", action="store_true", help="replace existing screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    pages = {"audio": args.audio, "futures": args.predict, "points": args.points}
    names = (NAMES if args.runs else ()) + tuple(n for n, r in pages.items() if r)
    outputs.check_new("serve_screenshots", *(out / f"{n}.png" for n in names), force=args.force)
    out.mkdir(parents=True, exist_ok=True)
    extra = [r for r in pages.values() if r]
    srv, sock = server(args.runs + extra, "127.0.0.1", 0, 1)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    ids = list(srv.config.app.state.runs)
    base, rid = f"http://127.0.0.1:{sock.getsockname()[1]}", ids[0]
    extra_ids = dict(zip([n for n, r in pages.items() if r], ids[len(args.runs):]))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            if args.runs:
                image_pages(page, base, rid, out)
            if "audio" in extra_ids:
                audio_page(page, base, extra_ids["audio"], out)
            if "futures" in extra_ids:
                futures_page(page, base, extra_ids["futures"], out)
            if "points" in extra_ids:
                points_page(page, base, extra_ids["points"], out)
            browser.close()
    finally:
        srv.should_exit = True
        thread.join(10)
    print("\n".join(str(out / f"{n}.png") for n in names))


if __name__ == "__main__":
    main()
