"""`adaattn gui` end to end: the app in its own process (`adaattn gui --no-browser`, tiny random models) driven by a
real headless Chromium (Debian's chromium and chromium-driver, through Selenium; nothing is downloaded).

Marked `browser` (and `slow`): `pytest -m "not browser"` or the quick loop leaves them out. .ci/run installs Chromium.
"""

import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]
webdriver = pytest.importorskip("selenium.webdriver")
if importlib.util.find_spec("gradio") is None:  # not imported here: the app runs in its own process
    pytest.skip('needs Gradio: pip install -e ".[gui]"', allow_module_level=True)
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("needs Chromium and its driver: apt-get install chromium chromium-driver", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PATIENCE = 180  # seconds a page may take to show a result; a guard against a hang, not a timing


@pytest.fixture(scope="module")
def gui_weights(weights_dir, tmp_path_factory):
    """A tiny random adaattn model whose pictures spread over [0, 1] (a picture, not a flat colour, so that each
    alpha gives another), on weights_dir's encoder."""
    from helpers import spread_outputs

    from adaattn_cli.models import build_model
    from adaattn_cli.weights import load_encoder, save_model

    folder = tmp_path_factory.mktemp("gui-weights")
    shutil.copy(weights_dir / "vgg16-hed.safetensors", folder)
    torch.manual_seed(3)
    model = build_model("adaattn", load_encoder(path=folder / "vgg16-hed.safetensors"), width_divisor=8).eval()
    save_model(spread_outputs(model, torch.rand(1, 3, 64, 64)), folder / "adaattn.safetensors")
    return folder


@pytest.fixture(scope="module")
def app(gui_weights, tmp_path_factory):
    """The app's address; at the end, SIGINT must stop it cleanly and leave none of its temporary files."""
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tmp_path_factory.mktemp("gui-temp")
    env = {**os.environ, "ADAATTN_WEIGHTS": str(gui_weights), "TMPDIR": str(temp)}  # the tiny models; its temp files here
    process = subprocess.Popen(
        [sys.executable, "-m", "adaattn_cli", "gui", "--no-browser", "--port", str(port)],
        env=env,
        cwd=temp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as in a terminal, even when the suite itself runs in the background (`pytest &`), where the shell
        # makes every child ignore SIGINT and the app would not hear it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in process.stdout:  # until the app says where it is (or exits)
        lines.append(line)
        if line.startswith("adaattn gui: http"):
            break
    assert process.poll() is None, "".join(lines)
    assert line.strip() == f"adaattn gui: http://127.0.0.1:{port}/ (Ctrl-C stops it)"
    yield f"http://127.0.0.1:{port}/"
    process.send_signal(signal.SIGINT)
    try:
        rest = process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()  # not left running (and busy) after the suite
        pytest.fail("Ctrl-C did not stop the app within 30 s: " + "".join(lines) + process.communicate()[0])
    assert process.returncode == 0 and "adaattn gui: stopped" in rest and "Traceback" not in rest, rest
    assert list(temp.iterdir()) == [], "the app left temporary files"


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver) -> WebDriverWait:
    """Waits up to PATIENCE, looking again when Gradio re-rendered an element between finding and reading it."""
    return WebDriverWait(driver, PATIENCE, ignored_exceptions=(StaleElementReferenceException,))


def open_page(driver, url):
    driver.get(url)
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))


def upload_photo(driver, path):
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(path))


def result_link(driver, previous=None) -> str:
    """The download link of the picture shown, once there is one (other than `previous`)."""

    def link(d):
        found = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#download a")]
        return found[0] if found and found[0] != previous else None

    return wait(driver).until(link)


def pixels(source) -> np.ndarray:
    """[H, W, 3] in [0, 1] of an image file or of what a URL serves."""
    if isinstance(source, str):
        source = io.BytesIO(urllib.request.urlopen(source, timeout=60).read())
    return np.asarray(Image.open(source).convert("RGB"), dtype=np.float32) / 255


def error_messages(driver, count: int) -> list[str]:
    """The messages of the page's error toasts, once there are `count` (Gradio stacks equal ones in one toast)."""

    def messages(d):
        lines = [line for toast in d.find_elements(By.CSS_SELECTOR, ".toast-body") for line in toast.text.splitlines()]
        found = [line for line in lines if line not in ("Error", "×") and not line.startswith("(")]
        return found if len(found) >= count else None

    return wait(driver).until(messages)


def test_stylize_a_photo_with_a_bundled_painting(app, browser):
    open_page(browser, app)
    upload_photo(browser, EXAMPLES / "bedroom.jpg")
    browser.find_elements(By.CSS_SELECTOR, "#paintings button")[1].click()  # Monet's water lilies
    strength = browser.find_element(By.CSS_SELECTOR, "#alpha input[type=range]")
    for _ in range(4):
        strength.send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.CSS_SELECTOR, "#alpha input[type=number]").get_attribute("value") == "0.8"
    browser.find_element(By.CSS_SELECTOR, "#stylize").click()
    link = result_link(browser)
    assert link.endswith("/bedroom_stylized_monet-water-lilies.png")
    picture, photo = pixels(link), pixels(EXAMPLES / "bedroom.jpg")
    assert picture.shape == photo.shape == (320, 465, 3)  # at the photo's size
    assert np.abs(picture - photo).mean() > 0.05
    compared = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, "#result img")]
    assert len(compared) == 2 and compared[1].endswith("/bedroom_stylized_monet-water-lilies.png")  # photo | result slider

    strength.send_keys(Keys.ARROW_LEFT)  # moving alpha with a picture shown renders anew
    weaker = pixels(result_link(browser, previous=link))
    assert browser.find_element(By.CSS_SELECTOR, "#alpha input[type=number]").get_attribute("value") == "0.75"
    assert weaker.shape == picture.shape and np.abs(weaker - picture).mean() > 1e-3

    requests = {
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
    }
    outside = sorted(url for url in requests if not url.startswith((app, "data:", "blob:")))
    assert requests and outside == []  # nothing from the internet: no fonts, scripts or analytics


def test_two_tabs_keep_their_own_results(app, browser):
    open_page(browser, app)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    open_page(browser, app)
    upload_photo(browser, EXAMPLES / "football.jpg")
    browser.switch_to.window(first)
    upload_photo(browser, EXAMPLES / "bedroom.jpg")
    for tab in (first, browser.window_handles[1]):  # both clicked before either result is back
        browser.switch_to.window(tab)
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo img"))
        browser.find_element(By.CSS_SELECTOR, "#stylize").click()
    second = result_link(browser)
    assert second.endswith("/football_stylized_vangogh-wheat-field.png") and pixels(second).shape == (480, 320, 3)
    browser.switch_to.window(first)
    mine = result_link(browser)
    assert mine.endswith("/bedroom_stylized_vangogh-wheat-field.png") and pixels(mine).shape == (320, 465, 3)


def test_a_bad_upload_shows_one_message_and_the_app_keeps_serving(app, browser, tmp_path):
    (tmp_path / "notes.png").write_text("a shopping list, not a picture")
    open_page(browser, app)
    upload_photo(browser, tmp_path / "notes.png")
    message = "photo notes.png: not a readable image (cannot identify image file)."
    assert error_messages(browser, 1) == [message]
    browser.find_element(By.CSS_SELECTOR, "#stylize").click()  # a click with it gets the same one line, no traceback
    assert error_messages(browser, 2) == [message, message]
    open_page(browser, app)  # still serving: a good photo works
    upload_photo(browser, EXAMPLES / "flowers.jpg")
    browser.find_element(By.CSS_SELECTOR, "#stylize").click()
    assert pixels(result_link(browser)).shape == (427, 320, 3)
