"""The HTML report as a person sees it: opened in headless Chromium, every image decoded and the
tables filled. Chromium comes from Debian's `chromium` and `chromium-driver`: `.ci/run` installs
them before the suite; elsewhere the test skips, saying so, where they are absent."""
import os

import pytest

from budgetvision.cli import main

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "--preset", "mnist-lenet", "--dataset", "digits", "--steps", "30", "--seeds", "2",
                 "--out", str(out), "--no-progress", "--set", "train.eval_every=10"]) == 0
    assert main(["train", "--preset", "mnist-pca", "--dataset", "digits", "--steps", "6", "--out", str(out),
                 "--no-progress", "--set", "train.batch_size=128", "train.sample_every=3"]) == 0
    return sorted(out.iterdir())


def test_report_renders_images_and_tables(runs, tmp_path, browser, capsys):
    out = tmp_path / "report.html"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    browser.get(out.as_uri())
    images = browser.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    alts = [a for a, _ in images]
    assert all(ok for _, ok in images), images
    assert "training graph" in alts and "test confusion matrix" in alts
    assert "64 non-cherry-picked samples, seeds 0-63" in alts
    first_table = browser.execute_script(
        "return [...document.querySelector('table').rows].map(r => [...r.cells].map(c => c.innerText))")
    assert first_table[0][:4] == ["run", "preset", "data set", "params"]
    assert [row[1] for row in first_table[1:]] == ["mnist-lenet", "mnist-pca"]
    assert "±" in first_table[1][8]  # accuracy with its spread over the two seeds


def test_report_bad_input(runs, tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "missing file" in capsys.readouterr().err
    assert main(["report", str(runs[0]), "--out", str(tmp_path / "r.pdf")]) == 2
    assert "must name an .html file" in capsys.readouterr().err
