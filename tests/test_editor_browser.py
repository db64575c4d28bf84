"""The editor in a real browser (headless Chromium via Playwright) and under several clients at once.

A server is started once per module as ``neuralassets editor`` on a free 127.0.0.1 port.
Skipped when Chromium or the playwright package is missing; no browser is ever downloaded.
"""
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import edits as E
from neuralassets.data import render as gt_render
from neuralassets.editor import inputs
from neuralassets.editor.overlay import display_scale, projected_box

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# The README's screenshot is refreshed only on request, so a test run never dirties the checkout.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "editor.png"
UPDATE_SCREENSHOT = os.environ.get("NEURALASSETS_UPDATE_SCREENSHOT") == "1"
SAMPLE = 0  # the sample the tests load (the dropdown's default)
MOVE_X = 0.6  # metres the browser test moves the object along world x (towards the image centre)
MARGIN = 4  # pixels around the old and new projected boxes where the render may change (edges, shadows)
TIMEOUT_MS = 60_000

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
    pytest.skip(f"Chromium is not installed at {CHROMIUM}", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """(url, process) of an editor served by the command line on a free localhost port."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neuralassets.cli", "editor", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the editor did not start:\n{proc.stdout.read()}")
            time.sleep(0.5)
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def status(page) -> str:
    return page.input_value("#status textarea")


def wait_status(page, prefix: str) -> str:
    page.wait_for_function("p => document.querySelector('#status textarea').value.startsWith(p)", arg=prefix,
                           timeout=TIMEOUT_MS)
    return status(page)


def open_sample(browser_or_context, url):
    page = browser_or_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1300})
    page.goto(url)
    page.click("#load-sample")
    wait_status(page, "Loaded sample 1")
    return page


def image_of(page, elem_id: str, scale: int) -> np.ndarray:
    """The (H, W, 3) uint8 image shown in component ``elem_id``, at scene resolution."""
    src = page.locator(f"#{elem_id} img").get_attribute("src")
    with urllib.request.urlopen(src) as r:
        arr = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
    return arr[::scale, ::scale]


def click_scene_pixel(page, u: float, v: float, scale: int) -> None:
    """Click the main view where scene pixel (u, v) is shown."""
    box = page.locator("#scene-view img").bounding_box()
    natural = page.evaluate("() => document.querySelector('#scene-view img').naturalWidth")
    k = box["width"] / natural
    page.mouse.click(box["x"] + u * scale * k, box["y"] + v * scale * k)


def largest_object(scene):
    return max(scene.assets, key=lambda a: int(a.masks[0].sum()))


def mask_centre(scene, asset_id):
    rows, cols = scene.asset(asset_id).masks[0].nonzero(as_tuple=True)
    k = int(((rows - rows.float().mean()) ** 2 + (cols - cols.float().mean()) ** 2).argmin())
    return float(cols[k]) + 0.5, float(rows[k]) + 0.5


def box_region(scene, asset_id, margin):
    """(H, W) bool: the 2D bounds of the asset's projected box at frame 0, grown by ``margin`` pixels."""
    uv = projected_box(scene, asset_id, 0)
    x0, y0 = (uv.amin(0) - margin).floor().clamp(min=0).long().tolist()
    x1, y1 = (uv.amax(0) + margin).ceil().long().tolist()
    region = torch.zeros(scene.height, scene.width, dtype=torch.bool)
    region[y0:y1, x0:x1] = True
    return region


def test_select_move_render_in_the_browser(server, browser, tmp_path):
    url, _ = server
    scene = inputs.sample_scene(SAMPLE)
    scale = display_scale(scene.height, scene.width)
    target = largest_object(scene)
    page = open_sample(browser, url)

    page.click("#render")
    wait_status(page, "Rendered frame 0")
    before = image_of(page, "after", scale)
    assert np.array_equal(before, (scene.frames[0] * 255).round().byte().permute(1, 2, 0).numpy())

    click_scene_pixel(page, *mask_centre(scene, target.id), scale)
    assert wait_status(page, "Selected") == f"Selected {target.id} ({target.name})."
    page.fill("#dx input[type=number]", str(MOVE_X))
    page.keyboard.press("Enter")
    page.click("#move")
    wait_status(page, f"Moved {target.id}")
    page.click("#render")
    wait_status(page, "Rendered frame 0")
    after = image_of(page, "after", scale)

    moved = E.move(scene, target.id, (MOVE_X, 0.0, 0.0), check_visibility="warn")
    expected = (gt_render(moved, frames=[0]).rgb[0] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(after, expected)  # the server applied exactly this edit
    changed = torch.from_numpy(np.abs(after.astype(int) - before.astype(int)).max(-1) > 8)
    region = box_region(scene, target.id, MARGIN) | box_region(moved, target.id, MARGIN)
    assert int((changed & region).sum()) > 0.2 * int(scene.asset(target.id).masks[0].sum())
    outside = int((changed & ~region).sum())
    assert outside <= 0.01 * int((~region).sum()), f"{outside} pixels changed outside the object's region"

    shot = DOCS_SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "editor.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_two_sessions_keep_separate_state(server, browser):
    url, _ = server
    scene = inputs.sample_scene(SAMPLE)
    scale = display_scale(scene.height, scene.width)
    target = largest_object(scene)
    first = browser.new_context()
    second = browser.new_context()
    try:
        a = open_sample(first, url)
        b = open_sample(second, url)
        click_scene_pixel(a, *mask_centre(scene, target.id), scale)
        wait_status(a, "Selected")
        a.get_by_role("tab", name="Remove / duplicate").click()
        a.click("#remove")
        assert wait_status(a, "Removed").startswith(f"Removed {target.id} (")
        assert "1. remove" in a.input_value("#history textarea")

        assert b.input_value("#history textarea") == "no edits yet"
        b.click("#undo")
        assert wait_status(b, "Nothing") == "Nothing to undo."
        b.click("#render")
        wait_status(b, "Rendered")
        assert np.array_equal(image_of(b, "after", scale), (scene.frames[0] * 255).round().byte().permute(1, 2, 0).numpy())
        a.click("#undo")
        assert wait_status(a, "Undone") == "Undone (0 more to undo)."
    finally:
        first.close()
        second.close()


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1024**2


@pytest.mark.slow  # ~30 s: 16 concurrent sessions of load, select, move and render
def test_four_clients_at_once_stay_apart(server):
    """4 API clients load, move by their own offset and render, together, for a few rounds."""
    from gradio_client import Client

    url, proc = server
    scene = inputs.sample_scene(SAMPLE)
    target = largest_object(scene)
    offsets = [(0.25 * (i - 1.5), 0.0, 0.0) for i in range(4)]  # -0.375 .. 0.375 m: all in view
    expected = [(gt_render(E.move(scene, target.id, d, check_visibility="warn"), frames=[0]).rgb[0] * 255)
                .round().byte().permute(1, 2, 0).numpy() for d in offsets]
    scale = display_scale(scene.height, scene.width)
    sample_name = inputs.sample_names()[SAMPLE]

    clients = [Client(url, verbose=False) for _ in range(4)]

    def session(i: int) -> np.ndarray:
        client = clients[i]
        client.predict(sample_name, api_name="/load_sample")  # reloading starts the session's scene afresh
        client.predict(target.id, api_name="/select")
        message = client.predict(*offsets[i], api_name="/move")[0]
        assert message.startswith(f"Moved {target.id}"), message
        out = client.predict("ground truth", 20, 2.0, 0, True, api_name="/render")
        assert out[0] == "Rendered frame 0 with the ground truth back end.", out[0]
        history = out[-2]
        assert history.count("move") == 1, history  # only this client's own edit
        return np.asarray(Image.open(out[3]).convert("RGB"))[::scale, ::scale]

    memory = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            images = list(pool.map(session, range(4)))
            for i, image in enumerate(images):
                assert np.array_equal(image, expected[i]), f"client {i} got another client's render"
            memory.append(rss_mb(proc.pid))
    print("server RSS after each round (MB):", ", ".join(f"{m:.0f}" for m in memory))
    # after the first round has warmed caches up, further rounds must not keep adding memory
    assert memory[-1] - memory[0] < 200, f"server RSS went {', '.join(f'{m:.0f}' for m in memory)} MB over 4 rounds"
