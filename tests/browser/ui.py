"""Drive the admin UI in headless Chromium (Selenium + Debian's chromedriver).

Usage: ui.py <admin base url> <admin key> <screenshot dir> <public base url> <photo> <viewer key>
Prints one line per scenario; exits 1 on the first failure, after a screenshot of the page.
"""
import json
import sys
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, key, shots, public = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

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


def fill(element_id, value):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def field_error_at_its_field():
    fill("new-id", "Bad Id!")
    fill("new-name", "Bad")
    fill("new-email", "bad@example.com")
    driver.find_element(By.CSS_SELECTOR, "#create-user button").click()
    wait.until(lambda d: text("err-id") != "")
    assert text("create-error") == "", text("create-error")


def upload(api_key):
    photo = open(sys.argv[5], "rb").read()
    boundary = "uiTestBoundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        public + "/api/v1/upload",
        data=body,
        headers={"X-API-Key": api_key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def create_user_and_upload():
    fill("new-id", "ui-made")
    fill("new-name", "Made in the UI")
    fill("new-email", "ui@example.com")
    driver.find_element(By.CSS_SELECTOR, "#create-user button").click()
    wait.until(lambda d: d.find_element(By.ID, "new-key").is_displayed())
    new_key = driver.find_element(By.ID, "new-key-value").get_attribute("value")
    assert new_key.startswith("imgproxy_ui-made_"), new_key
    assert "not be shown again" in text("new-key")
    driver.find_element(By.ID, "copy-key").click()
    wait.until(lambda d: text("copied") != "")
    status = upload(new_key)
    assert status == 200, status
    driver.save_screenshot(f"{shots}/user-created.png")


def xss_as_text():
    field = driver.find_element(By.ID, "users-q")
    field.clear()
    field.send_keys("xss")
    driver.find_element(By.CSS_SELECTOR, "#users-search button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) == 1)
    cells = driver.find_elements(By.CSS_SELECTOR, "#user-rows tr td")
    assert cells[1].text == "<img src=x onerror=alert(1)>", cells[1].text
    assert not driver.find_elements(By.CSS_SELECTOR, "#user-rows img"), "markup was rendered"


def audit_lists_the_changes():
    driver.find_element(By.CSS_SELECTOR, 'a[href="#audit"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#audit-rows tr")) > 0)
    fill("audit-action", "user.create")
    fill("audit-target", "ui-made")
    driver.find_element(By.CSS_SELECTOR, "#audit-filter button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#audit-rows tr")) == 1)
    cells = driver.find_elements(By.CSS_SELECTOR, "#audit-rows tr td")
    assert [c.text for c in cells[1:4]] == ["legacy", "user.create", "ui-made"], [c.text for c in cells]
    driver.save_screenshot(f"{shots}/audit.png")


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
    # The API's 4xx answers the scenarios provoke (a wrong key, a bad id) are network entries;
    # nothing else may fail: a script error or a CSP violation would.
    unexpected = [e for e in errors if e.get("source") != "network"]
    assert not unexpected, unexpected


def logout():
    driver.find_element(By.ID, "logout").click()
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert driver.execute_script("return sessionStorage.length") == 0


def viewer_sees_no_edit_controls():
    log_in(sys.argv[6])
    wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
    assert text("who").endswith("(viewer)"), text("who")
    driver.find_element(By.CSS_SELECTOR, 'a[href="#users"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) > 0)
    assert not driver.find_element(By.ID, "create-user").is_displayed()
    # The same call the hidden form makes, forced from the page: the server refuses it.
    status = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch("/api/v1/users", {method: "POST",
            headers: {"X-API-Key": sessionStorage.getItem("imgproxy-gateway.key"),
                      "Content-Type": "application/json"},
            body: JSON.stringify({id: "forced", name: "F", email: "f@example.com", role: "admin"})})
          .then((r) => done(r.status));
        """
    )
    assert status == 403, status
    driver.save_screenshot(f"{shots}/viewer-users.png")


scenario("login with a wrong key", wrong_key)
scenario("login as admin", admin_login)
scenario("overview shows both backends", overview)
scenario("backends page", backends)
scenario("users page, server-side paging", users_page)
scenario("a hostile name renders as text", xss_as_text)
scenario("a validation error shows at its field", field_error_at_its_field)
scenario("create a user; its key, shown once, uploads", create_user_and_upload)
scenario("the audit page lists the changes", audit_lists_the_changes)
scenario("no request leaves the origin", no_other_origin)
scenario("logout clears the key", logout)
scenario("a viewer sees no edit controls, and a forced edit is refused", viewer_sees_no_edit_controls)
driver.quit()
