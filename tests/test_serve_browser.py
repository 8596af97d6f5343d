"""gankit serve in a real browser: Debian's headless chromium driven by Playwright, against a server on a free port
in a thread, on tiny runs. The page loads its grid, a slider move changes the image, the arithmetic shows three
inputs and a result, a drawn mask gets its fill, and the run page draws its curves; a recording run's page plays its
samples at their length, a predict run's page shows the GIFs of its futures, a 2-D run's page its scatter plot.
Screenshots go to tmp_path (benchmarks/serve_screenshots.py makes docs/serve/*.png from real preset runs)."""

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY
from gankit import run as run_mod
from gankit.cli import main

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium; .ci/run installs it)", allow_module_level=True)
pytest.importorskip("starlette", reason="the serve extra is not installed (pip install -e '.[serve]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from gankit.serve import server  # noqa: E402

expect = sync_api.expect
PNG = re.compile(r"^data:image/png;base64,")

pytestmark = pytest.mark.usefixtures("one_thread")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, one_thread):
    """A tiny run, and tests/test_serve.py's recording, predict and 2-D runs, served on a free port of 127.0.0.1,
    from a thread, for the module."""
    from gankit.data import images as image_data, moving
    from test_serve import train_others

    root = tmp_path_factory.mktemp("browser")
    assert main(["train", *TINY, "--steps", "20", "--out", str(root), "--name", "tiny"]) == 0
    run_mod.record_evaluation(root / "tiny", {"step": 20, "results": {"fid": 99.0}})
    (root / "tiny" / "eval").mkdir()
    (root / "tiny" / "eval" / "step-0000020.json").write_text(json.dumps(
        {"step": 20, "n": 100, "features": "classifier", "results": {"fid": 99.0, "fid_floor": 12.0}}))
    mp = pytest.MonkeyPatch()
    mp.setattr(moving, "mnist_digits", lambda data_dir: image_data.load_digits(28, 1))   # as test_serve's
    train_others(root)
    srv, sock = server([root / "tiny", *(root / "runs" / n for n in ("wav", "pred", "ring"))], "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()
    mp.undo()


@pytest.fixture(scope="module")
def browser(base_url):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url):
    pg = browser.new_page(viewport={"width": 1280, "height": 1000})
    pg.set_default_timeout(TIMEOUT_MS)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def explorer(page, base_url):
    """The explorer of the run with its grid drawn and the first three tiles kept (the first one selected)."""
    page.goto(base_url + "/runs/tiny")
    expect(page.locator("#grid .tile img")).to_have_count(16)
    for i in range(3):
        page.locator("#grid .tile").nth(i).click()
    expect(page.locator("#kept .item")).to_have_count(3)
    expect(page.locator("#edit-image")).to_have_attribute("src", PNG)


def test_the_page_loads_and_a_slider_move_changes_the_image(page, base_url, tmp_path):
    explorer(page, base_url)
    assert page.locator("#sliders input[type=range]").count() == 8
    before = page.get_attribute("#edit-image", "src")
    page.eval_on_selector("#dir-0", "e => { e.value = 2.5; e.dispatchEvent(new Event('input')); }")
    expect(page.locator("#edit-image")).not_to_have_attribute("src", before)
    assert page.get_attribute("#edit-image", "src").startswith("data:image/png")
    page.eval_on_selector("#t", "e => { e.value = 0.4; e.dispatchEvent(new Event('input')); }")
    expect(page.locator("#between-image")).to_have_attribute("src", PNG)
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)


def test_the_arithmetic_shows_three_inputs_and_a_result(page, base_url, tmp_path):
    explorer(page, base_url)
    for i, slot in enumerate("ABC"):
        page.locator("#kept .item").nth(i).locator(f"button.to-{slot}").click()
    page.click("#arith-go")
    page.wait_for_selector("#arith-result img")
    assert page.locator("#arith-eq .term[data-group]").count() == 3
    assert [page.locator("#arith-eq .op").nth(i).inner_text() for i in range(3)] == ["-", "+", "="]
    assert page.get_attribute("#arith-result img", "src").startswith("data:image/png")
    page.locator("#arith-eq").screenshot(path=str(tmp_path / "arithmetic.png"))


def test_a_drawn_mask_gets_its_fill(page, base_url, tmp_path):
    explorer(page, base_url)
    page.locator("#mask-canvas").scroll_into_view_if_needed()
    box = page.locator("#mask-canvas").bounding_box()                   # in the viewport's coordinates
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    holes = page.evaluate("Array.from(S.mask).filter(v => v === 0).length")
    assert holes > 0
    page.click("#inpaint-go")
    page.wait_for_selector("#inpaint-completed img")
    assert page.get_attribute("#inpaint-completed img", "src").startswith("data:image/png")
    page.locator("#inpaint-section").screenshot(path=str(tmp_path / "inpaint.png"))


def test_the_run_page_shows_the_curves_the_evaluation_and_the_grids(page, base_url, tmp_path):
    page.goto(base_url + "/runs/tiny/progress")
    page.wait_for_selector("svg.plot polyline[data-key=loss_d]")
    points = page.get_attribute("svg.plot polyline[data-key=loss_d]", "points").split()
    assert len(points) == 4                                              # steps 5, 10, 15, 20
    assert page.locator("svg.plot polyline[data-key='D(G(z))']").count() == 1
    assert "12" in page.locator("#eval-table").inner_text()             # the floor beside the value
    expect(page.locator("#grids figure img")).to_have_count(2)
    page.screenshot(path=str(tmp_path / "progress.png"), full_page=True)


def durations(page, selector: str) -> list[float]:
    """The `duration` of each <audio> matched, once its metadata has loaded."""
    return page.eval_on_selector_all(selector, """els => Promise.all(els.map(a => a.readyState >= 1 ? a.duration :
        new Promise((ok, fail) => { a.addEventListener("loadedmetadata", () => ok(a.duration));
                                    a.addEventListener("error", () => fail(new Error("audio error"))); })))""")


def test_a_recording_run_plays_its_samples_and_a_slider_move_changes_the_sound(page, base_url, tmp_path):
    page.goto(base_url + "/runs/wav")
    expect(page.locator("#grid .tile audio")).to_have_count(16)
    expect(page.locator("#grid .tile img").first).to_have_attribute("src", PNG)
    assert durations(page, "#grid .tile audio") == [1024 / 8000] * 16       # audio_length / sample_rate
    assert page.locator("#arith-section").is_hidden()                     # recordings have no arithmetic
    page.select_option("#cls", "2")
    page.wait_for_function("() => Array.from(document.querySelectorAll('#grid .tile div'))"
                           ".every(d => d.textContent.endsWith('class 2'))")          # every clip of class 2
    for i in range(2):
        page.locator("#grid .tile").nth(i).click()
    expect(page.locator("#kept .item audio")).to_have_count(2)
    expect(page.locator("#edit-audio")).to_have_attribute("src", re.compile("^data:audio/wav"))
    before = page.get_attribute("#edit-audio", "src")
    page.eval_on_selector("#dir-0", "e => { e.value = 2.5; e.dispatchEvent(new Event('input')); }")
    expect(page.locator("#edit-audio")).not_to_have_attribute("src", before)
    page.eval_on_selector("#t", "e => { e.value = 0.5; e.dispatchEvent(new Event('input')); }")
    expect(page.locator("#between-audio")).to_have_attribute("src", re.compile("^data:audio/wav"))
    assert durations(page, "#edit-audio, #between-audio") == [1024 / 8000] * 2
    page.screenshot(path=str(tmp_path / "audio.png"), full_page=True)


def test_a_predict_run_shows_the_gifs_of_its_futures(page, base_url, tmp_path):
    page.goto(base_url + "/runs/pred")
    expect(page.locator("#futures-out figure.future img")).to_have_count(4)
    gif = re.compile("^data:image/gif;base64,")
    for selector in ("#futures-context img", "#futures-truth img"):
        expect(page.locator(selector)).to_have_attribute("src", gif)
    assert page.evaluate("Array.from(document.querySelectorAll('#futures-out img')).every(i => i.naturalWidth)")
    first = page.get_attribute("#futures-out figure.future img", "src")
    page.fill("#futures-k", "2")
    page.dispatch_event("#futures-k", "change")
    expect(page.locator("#futures-out figure.future img")).to_have_count(2)
    page.click("#futures-reroll")
    expect(page.locator("#futures-out figure.future img").first).not_to_have_attribute("src", first)
    page.screenshot(path=str(tmp_path / "futures.png"), full_page=True)
    np.savez(tmp_path / "ctx.npz", frames=np.full((1, 3, 16, 16), 200, np.uint8))   # an uploaded context
    page.set_input_files("#context-file", str(tmp_path / "ctx.npz"))
    expect(page.locator("#futures-truth")).to_have_count(0)                   # an upload has no known future
    expect(page.locator("#status")).to_contain_text("futures of uploaded sequence 0")


def test_a_points_run_shows_its_scatter_plot(page, base_url):
    page.goto(base_url + "/runs/ring")
    expect(page.locator("#scatter-image")).to_have_attribute("src", PNG)
    before = page.get_attribute("#scatter-image", "src")
    page.click("#points-reroll")
    expect(page.locator("#scatter-image")).not_to_have_attribute("src", before)
