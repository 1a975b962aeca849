"""docs/labelstudio.png: a seed article pre-annotated in a real Label Studio, seen by a logged-in user.

Starts a throw-away server from .venv-labelstudio, pushes one seed article with its
annotations as *predictions*, logs in with headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) and photographs the labeling view. It also
reads back the highlighted spans from the page and checks that each shows the
text at our offsets, i.e. that the tool counts characters as Python does.

    apt-get install chromium chromium-driver && .venv-labelstudio/bin/pip install selenium
    PYTHONPATH=. .venv-labelstudio/bin/python scripts/labelstudio_screenshot.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vnpol import labelstudio as ls  # noqa: E402
from vnpol.corpus import read_jsonl  # noqa: E402
from vnpol.labelstudio_api import local_server  # noqa: E402

USER, PASSWORD, TOKEN = "annotator@vnpol.local", "vnpol-screenshot", "vnpol0screenshot0token000000000000000000"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--hide-scrollbars",
                 "--disable-dev-shm-usage", "--lang=vi"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def log_in(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/user/login/")
    driver.find_element(By.NAME, "email").send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    time.sleep(3)


def highlighted(driver, timeout: float = 60) -> list[str]:
    """The text of every highlighted region on the page, once the regions are drawn."""
    deadline = time.monotonic() + timeout
    spans: list[str] = []
    while time.monotonic() < deadline:
        spans = driver.execute_script(
            "return Array.from(document.querySelectorAll('span.htx-highlight')).map(s => s.textContent)")
        if spans:
            return spans
        time.sleep(1)
    return spans


def shrink(png: Path) -> None:
    """256 colours are plenty for a screenshot of text: a third of the bytes."""
    try:
        from PIL import Image
    except ImportError:
        return
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label-studio", default=str(ROOT / ".venv-labelstudio" / "bin" / "label-studio"))
    ap.add_argument("--doc", type=int, default=0, help="which seed article (default: %(default)s)")
    ap.add_argument("--output", default=str(ROOT / "docs" / "labelstudio.png"))
    args = ap.parse_args()
    doc = read_jsonl(ROOT / "seeds" / "gold.jsonl")[args.doc]
    with tempfile.TemporaryDirectory() as home, local_server(args.label_studio, home, user=USER, password=PASSWORD, token=TOKEN) as client:
        project = client.push([ls.prediction_task(doc, "vnpol-demo")], ls.label_config(), title="vnpol: correcting the model")
        (task,) = client.tasks(project["id"])
        driver = browser()
        try:
            log_in(driver, client.url)
            driver.get(f"{client.url}/projects/{project['id']}/data?task={task['id']}")
            spans = highlighted(driver)
            time.sleep(3)
            driver.save_screenshot(args.output)
        finally:
            driver.quit()
    expected = [e.text for e in sorted(doc.entities, key=lambda e: e.start)]
    print(f"{len(spans)} highlighted region(s) on the page; {len(expected)} entities in {doc.id}")
    if spans != expected:
        wrong = [(a, b) for a, b in zip(spans, expected) if a != b][:5]
        print(f"error: the page's regions differ from our offsets: {wrong}", file=sys.stderr)
        return 1
    shrink(Path(args.output))
    print(f"every region shows text[start:end] exactly; screenshot: {args.output} ({Path(args.output).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
