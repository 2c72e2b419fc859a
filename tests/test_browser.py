"""The drawing page in a real headless Chromium (Debian's chromium + chromium-driver), via Selenium.

Draws digits on the canvas with pointer strokes, picks a number, and reads the
answer the page shows from the released model behind `scripts/serve.py`'s
server; then stops the server and checks the page says so. Marked `browser`:
`pytest -m "not browser"` skips these, CI runs them (.ci/run installs Chromium).
"""

import os
import shutil

import pytest

from conftest import RELEASE, RELEASED, Running

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.large,  # A browser process.
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs Debian's chromium and chromium-driver"),
    pytest.mark.skipif(RELEASE is None,
                       reason="needs the released model"),
]
WAIT_SECONDS = 60   # Every wait on the page is bounded by this.
# Strokes as fractions of the canvas side: a 1 (one downstroke) and a 7.
ONE = [(0.5, 0.15), (0.5, 0.5), (0.5, 0.85)]
SEVEN = [(0.28, 0.22), (0.5, 0.22), (0.72, 0.22), (0.62, 0.5), (0.52, 0.8)]


@pytest.fixture
def server():
    with Running(model_dir=RELEASED) as running:
        yield running


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=390,1000"):   # A phone-sized window.
        options.add_argument(argument)
    # The driver's path given: Selenium never tries to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def _draw(driver, points):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "canvas")
    width, height = canvas.rect["width"], canvas.rect["height"]
    offsets = [(int(fx * width - width / 2), int(fy * height - height / 2))
               for fx, fy in points]
    actions = ActionChains(driver, duration=20)
    actions.move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(offsets, offsets[1:]):
        actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


def _answer_after(driver, action):
    """Runs `action`, then waits for a new answer or error; returns (answer, error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answer = driver.find_element(By.ID, "answer")
    driver.execute_script("arguments[0].textContent = ''", answer)
    action()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: answer.text)
    error = driver.find_element(By.ID, "error")
    return answer.text, (error.text if error.is_displayed() else "")


def test_drawn_digits_get_digit_and_sum(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    # Phone-sized: nothing wider than the window, the canvas inside it.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.find_element(By.ID, "canvas").rect["width"] <= 390

    def pick(n):
        return browser.find_element(By.CSS_SELECTOR, f"#numbers button[data-number='{n}']")
    pick(3).click()
    assert _answer_after(browser, lambda: _draw(browser, ONE)) == ("digit 1 + 3 = sum 4", "")
    browser.find_element(By.ID, "clear").click()
    pick(5).click()
    assert _answer_after(browser, lambda: _draw(browser, SEVEN)) == ("digit 7 + 5 = sum 12", "")
    # Picking another number asks again for the same drawing.
    assert _answer_after(browser, lambda: pick(9).click()) == ("digit 7 + 9 = sum 16", "")
    bars = browser.find_elements(By.CSS_SELECTOR, "#sum-bars li")
    assert len(bars) == 3 and bars[0].text.startswith("16")
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_page_says_when_the_server_is_down(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    assert _answer_after(browser, lambda: _draw(browser, SEVEN))[1] == ""
    assert browser.find_elements(By.CSS_SELECTOR, "#sum-bars li")
    server.server.shutdown()
    server.server.server_close()
    answer, error = _answer_after(browser, lambda: _draw(browser, ONE))
    assert answer == "No answer."
    assert "Cannot reach the model server" in error
    assert browser.find_element(By.ID, "error").is_displayed()
    # The earlier answer's bars are gone: nothing stale beside the error.
    assert browser.find_elements(By.CSS_SELECTOR, "#sum-bars li") == []


@pytest.mark.skipif(not os.environ.get("MNIST_SUM_DATA"), reason="needs $MNIST_SUM_DATA")
def test_clicking_an_mnist_sample_loads_it(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with Running(model_dir=RELEASED, data_path=os.environ["MNIST_SUM_DATA"]) as server:
        browser.get(server.url + "/")
        samples = WebDriverWait(browser, WAIT_SECONDS).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#samples img"))
        assert len(samples) == 10
        three = next(s for s in samples if s.get_attribute("alt").endswith("(a 3)"))
        browser.find_element(By.CSS_SELECTOR, "#numbers button[data-number='4']").click()
        assert _answer_after(browser, three.click) == ("digit 3 + 4 = sum 7", "")


@pytest.mark.skipif(not os.environ.get("MNIST_SUM_DATA"), reason="needs $MNIST_SUM_DATA")
def test_a_photo_is_read_and_the_picture_the_model_read_is_shown(server, browser, tmp_path):
    import numpy as np
    from selenium.webdriver.common.by import By

    from mnist_sum_keras import contract
    from mnist_sum_keras.frontend import synthetic

    with np.load(os.environ["MNIST_SUM_DATA"]) as data:
        seven = data["x_test"][0]   # a 7 from writers the model never trained on
        assert data["y_test"][0] == 7
    rng = np.random.default_rng(3)
    photo, blank = tmp_path / "seven.jpg", tmp_path / "blank.jpg"
    photo.write_bytes(synthetic.render(rng, seven, "phone photo"))
    blank.write_bytes(synthetic.render_blank(rng, "blank paper"))

    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#numbers button[data-number='5']").click()
    chooser = browser.find_element(By.ID, "photo")
    assert chooser.get_attribute("capture") == "environment"
    assert _answer_after(browser, lambda: chooser.send_keys(str(photo))) == (
        "digit 7 + 5 = sum 12", "")
    assert browser.find_element(By.ID, "seen-box").is_displayed()
    # The 28x28 picture drawn from the signature's `image` output: a digit, not black.
    ink = browser.execute_script(
        "const d = document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data; let s = 0;"
        "for (let i = 0; i < d.length; i += 4) s += d[i] > 128; return s;")
    assert 20 < ink < 400
    # Picking another number reads the same photo again.
    assert _answer_after(browser, lambda: browser.find_element(
        By.CSS_SELECTOR, "#numbers button[data-number='2']").click()) == ("digit 7 + 2 = sum 9", "")
    # A photo of blank paper is refused, and the page says so.
    answer, error = _answer_after(browser, lambda: chooser.send_keys(str(blank)))
    assert answer == "No answer."
    assert error in contract.NO_DIGIT_WORDS.values()
    assert not browser.find_element(By.ID, "seen-box").is_displayed()
    browser.save_screenshot(str(tmp_path / "photo.png"))
