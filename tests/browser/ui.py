"""Drive the admin UI in headless Chromium (Selenium + Debian's chromedriver).

Usage: ui.py <admin base url> <admin key> <screenshot dir>
Prints one line per scenario; exits 1 on the first failure, after a screenshot of the page.
"""
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, key, shots = sys.argv[1], sys.argv[2], sys.argv[3]

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 15)


def text(element_id):
    return driver.find_element(By.ID, element_id).text


def log_in(with_key):
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(with_key)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()


def scenario(name, run):
    try:
        run()
        print(f"ok: {name}")
    except Exception as e:  # noqa: BLE001 - any failure is reported with a screenshot
        path = f"{shots}/{name.replace(' ', '_')}.png"
        driver.save_screenshot(path)
        print(f"FAILED: {name}: {type(e).__name__}: {e} (screenshot {path})")
        driver.quit()
        sys.exit(1)


def wrong_key():
    driver.get(base + "/admin")
    log_in("imgproxy_nobody_" + "a" * 43)
    wait.until(lambda d: text("login-error") != "")
    assert "not valid" in text("login-error"), text("login-error")
    assert driver.execute_script("return sessionStorage.length") == 0


def admin_login():
    log_in(key)
    wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
    assert text("who") == "legacy (admin)", text("who")
    assert driver.execute_script("return localStorage.length") == 0
    assert driver.execute_script("return document.cookie") == ""


def overview():
    wait.until(lambda d: text("m-backends") == "2 / 2")
    assert text("m-total") not in ("", "–"), text("m-total")
    driver.save_screenshot(f"{shots}/overview.png")


def backends():
    driver.find_element(By.CSS_SELECTOR, 'a[href="#backends"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#backend-rows tr")) == 2)
    cells = driver.find_elements(By.CSS_SELECTOR, "#backend-rows tr td")
    assert cells[2].text == "yes", cells[2].text
    driver.save_screenshot(f"{shots}/backends.png")


def users_page():
    driver.find_element(By.CSS_SELECTOR, 'a[href="#users"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) == 20)
    next_page = driver.find_element(By.ID, "users-next")
    assert next_page.is_displayed(), "25 users: a next page"
    next_page.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) == 25)
    assert not next_page.is_displayed()
    driver.save_screenshot(f"{shots}/users.png")


def xss_as_text():
    field = driver.find_element(By.ID, "users-q")
    field.clear()
    field.send_keys("xss")
    driver.find_element(By.CSS_SELECTOR, "#users-search button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) == 1)
    cells = driver.find_elements(By.CSS_SELECTOR, "#user-rows tr td")
    assert cells[1].text == "<img src=x onerror=alert(1)>", cells[1].text
    assert not driver.find_elements(By.CSS_SELECTOR, "#user-rows img"), "markup was rendered"


def no_other_origin():
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls, "no request seen"
    outside = [u for u in urls if not u.startswith(base) and not u.startswith("data:")]
    assert not outside, outside
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # The wrong-key login is an expected 401 in the console; nothing else may fail (a CSP
    # violation would).
    unexpected = [e for e in errors if "401" not in e["message"]]
    assert not unexpected, unexpected


def logout():
    driver.find_element(By.ID, "logout").click()
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert driver.execute_script("return sessionStorage.length") == 0


scenario("login with a wrong key", wrong_key)
scenario("login as admin", admin_login)
scenario("overview shows both backends", overview)
scenario("backends page", backends)
scenario("users page, server-side paging", users_page)
scenario("a hostile name renders as text", xss_as_text)
scenario("no request leaves the origin", no_other_origin)
scenario("logout clears the key", logout)
driver.quit()
