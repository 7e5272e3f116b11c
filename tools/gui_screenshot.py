"""Make docs/gui.jpg, the README's picture of `adaattn gui`: the app on the bundled models, a bundled photo stylised
with a bundled painting, taken by headless Chromium (Debian's chromium and chromium-driver, through Selenium).

python tools/gui_screenshot.py [--out docs/gui.jpg] [--photo examples/bedroom.jpg] [--painting 0] [--alpha-steps 2]
"""

import argparse
import io
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/gui.jpg")
    parser.add_argument("--photo", default="examples/bedroom.jpg")
    parser.add_argument("--painting", type=int, default=0, help="which bundled painting, from the left")
    parser.add_argument("--alpha-steps", type=int, default=2, help="steps of 0.05 the alpha slider is moved down")
    parser.add_argument("--size", default="1280x1160", help="browser window, WIDTHxHEIGHT")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "adaattn_cli", "gui", "--no-browser", "--port", str(port)]
    app = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={args.size.replace('x', ',')}"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        for line in app.stdout:  # the app says where it is once it serves
            if line.startswith("adaattn gui: http"):
                break
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 600)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(Path(args.photo).resolve()))
        browser.find_elements(By.CSS_SELECTOR, "#paintings button")[args.painting].click()
        for _ in range(args.alpha_steps):
            browser.find_element(By.CSS_SELECTOR, "#alpha input[type=range]").send_keys(Keys.ARROW_LEFT)
        browser.find_element(By.CSS_SELECTOR, "#stylize").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#download a"))
        wait.until(lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
        shot.save(args.out, quality=85, optimize=True)
        print(f"wrote {args.out} ({shot.width}x{shot.height}, {Path(args.out).stat().st_size // 1024} KB)")
    finally:
        browser.quit()
        app.send_signal(signal.SIGINT)
        app.wait(timeout=60)


if __name__ == "__main__":
    main()
