"""`adaattn gui`'s first picture against `adaattn stylize`'s, same photo, style and model, in turns.

    python bench/gui_speed.py --size 512 --rounds 3

stylize: the wall time of `python -m adaattn_cli stylize PHOTO -s STYLE -o OUT` (Python and torch start, the model
loads, the style is encoded, the picture made and written). gui: a fresh `adaattn gui --no-browser` already serving,
headless Chromium (Debian's, through Selenium) uploads the photo and clicks Stylize; the time from the click to the
download link (the model loads at that first click, the style is encoded, the picture made, written and sent). Also
`adaattn gui --help`'s wall time. Photo: examples/bedroom.jpg cropped square and resized to --size; style: Van Gogh.
"""

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

STYLE = "examples/vangogh-wheat-field.jpg"


def cli_seconds(photo: Path, out: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adaattn_cli", "stylize", str(photo), "-s", STYLE, "-o", str(out), "--overwrite"], check=True)
    return time.perf_counter() - began


def gui_seconds(photo: Path, browser) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = subprocess.Popen(
        [sys.executable, "-m", "adaattn_cli", "gui", "--no-browser", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        for line in app.stdout:
            if line.startswith("adaattn gui: http"):
                break
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 600)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(photo))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo img"))  # uploaded
        began = time.perf_counter()
        browser.find_element(By.CSS_SELECTOR, "#stylize").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#download a"))
        return time.perf_counter() - began
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=60)


def help_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adaattn_cli", "gui", "--help"], check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gui-speed-"))
    photo = folder / f"photo{args.size}.png"
    with Image.open("examples/bedroom.jpg") as image:
        side = min(image.size)
        image.crop((0, 0, side, side)).resize((args.size, args.size), Image.Resampling.LANCZOS).save(photo)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    times = {"stylize": [], "gui": [], "gui --help": []}
    try:
        for _ in range(args.rounds):  # in turns: a machine whose load drifts weighs on both alike
            times["stylize"].append(cli_seconds(photo, folder / "cli.png"))
            times["gui"].append(gui_seconds(photo, browser))
            times["gui --help"].append(help_seconds())
    finally:
        browser.quit()
        shutil.rmtree(folder, ignore_errors=True)
    for name, values in times.items():
        print(f"{name:>10}: median {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"gui / stylize: {statistics.median(times['gui']) / statistics.median(times['stylize']):.2f}x at {args.size}x{args.size}")


if __name__ == "__main__":
    main()
