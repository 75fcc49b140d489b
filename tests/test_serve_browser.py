"""The web page of ``transferlab serve``, driven like a person would in headless Chromium (Selenium + Debian's
chromium-driver): give the token, pick a real hymenoptera photo, read the label the page shows, and compare it with
the API's answer for the same file; then the model card page with its confusion matrix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dataset
from test_serve import AUTH, TOKEN, Served, multipart

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMEDRIVER.exists() or not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver; "
                    "scripts/setup.sh does it where it can)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def ants_bees_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A headless model on 10 ants and 10 bees of hymenoptera's train split, served with a token."""
    from transferlab.workflows.train import train

    data = shared_dataset("hymenoptera")
    root = tmp_path_factory.mktemp("serve_browser")
    for label in ("ants", "bees"):
        (root / "data" / label).mkdir(parents=True)
        for src in sorted((data / "train" / label).glob("*.jpg"))[:10]:
            shutil.copy(src, root / "data" / label / src.name)
    train(root / "data", out=root / "model", strategy="headless", val_fraction=0.3)
    server = Served(root / "model", cache_dir, root)
    yield server, data
    assert server.stop() == 0, server.stderr()


def test_page_shows_the_label_the_api_gives(browser, ants_bees_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, data = ants_bees_server
    photo = sorted((data / "val" / "ants").glob("*.jpg"))[0]
    wait = WebDriverWait(browser, 60)
    browser.get(server.url + "/")
    wait.until(ec.visibility_of_element_located((By.ID, "token")))  # /model said 401: the page asks
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "token-save").click()
    wait.until(lambda d: "classes" in d.find_element(By.ID, "summary").text)
    browser.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda d: d.find_element(By.ID, "label").get_attribute("textContent").strip())
    shown = browser.find_element(By.ID, "label").get_attribute("textContent").strip()

    body, head = multipart([(photo.name, photo.read_bytes())])
    status, doc = server.json("POST", "/predict", body, {**head, **AUTH})
    assert status == 200
    answer = doc["predictions"][0]
    assert shown == answer["label"] and shown in ("ants", "bees")
    result = browser.find_element(By.CSS_SELECTOR, "#results .result")
    assert photo.name in result.find_element(By.CLASS_NAME, "name").text
    bars = result.find_elements(By.CLASS_NAME, "bar")
    assert [b.find_element(By.TAG_NAME, "span").text for b in bars] == list(answer["probabilities"])
    top_pct = float(bars[0].find_element(By.CLASS_NAME, "pct").text.rstrip("%"))
    assert top_pct == pytest.approx(100 * answer["probabilities"][shown], abs=0.051)
    assert "done" in browser.find_element(By.ID, "status").text

    shot = tmp_path / "serve_page.png"
    assert browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # a drawn page: thumbnail, bars and text, not a blank one
    print(f"screenshot: {shot}")


def test_card_page_shows_metrics_and_the_confusion_matrix(browser, ants_bees_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, _ = ants_bees_server
    metrics = json.loads((server.model_dir / "metrics.json").read_text())
    browser.get(server.url + "/card")  # the token is still in this tab's session storage
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.ID, "metrics-table").text)
    shown = dict(line.split(" ", 1) for line in browser.find_element(By.ID, "metrics-table").text.splitlines())
    assert float(shown["accuracy"]) == pytest.approx(metrics["accuracy"], abs=5e-5)
    assert float(shown["macro_f1"]) == pytest.approx(metrics["macro_f1"], abs=5e-5)
    wait.until(lambda d: d.execute_script("const i = document.getElementById('matrix-img');"
                                          "return i.complete && i.naturalWidth > 0;"))
    matrix = browser.find_element(By.ID, "matrix-table").text
    assert "ants" in matrix and "bees" in matrix
    assert "train" in browser.find_element(By.ID, "data-table").text
    assert not browser.find_element(By.ID, "compare").is_displayed()  # not the winner of a compare run
    browser.save_screenshot(str(tmp_path / "serve_card.png"))
