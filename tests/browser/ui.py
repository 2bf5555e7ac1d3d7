"""Drive the admin UI in headless Chromium (Selenium + Debian's chromedriver).

Usage: ui.py <admin base url> <admin key> <screenshot dir> <public base url> <photo> <viewer key>
    <key of user b-00> <convert path>
Prints one line per scenario; exits 1 on the first failure, after a screenshot of the page.
"""
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

base, key, shots, public = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
b00_key = sys.argv[7]
CONVERT = sys.argv[8]

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# The overview and backends pages redraw every 5 s: an element found a moment ago may be gone.
wait = WebDriverWait(driver, 15, ignored_exceptions=[StaleElementReferenceException])
wait_long = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])


def text(element_id):
    return driver.find_element(By.ID, element_id).text


def log_in(with_key):
    """Types the key and presses Enter (the keyboard path)."""
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(with_key + Keys.ENTER)


def rows(tbody):
    return driver.find_elements(By.CSS_SELECTOR, f"#{tbody} tr")


def cells(tbody):
    """The table's text, read at once (the page may replace its rows at any moment)."""
    return driver.execute_script(
        "return [...document.getElementById(arguments[0]).rows]"
        ".map((tr) => [...tr.cells].map((td) => td.innerText))", tbody)


def go(fragment):
    driver.find_element(By.CSS_SELECTOR, f'a[href="#{fragment}"]').click()


def scenario(name, run):
    try:
        run()
        print(f"ok: {name}")
    except Exception as e:  # noqa: BLE001 - any failure is reported with a screenshot
        path = f"{shots}/failed-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
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
    assert text("m-database") == "up", text("m-database")


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
    assert next_page.is_displayed(), "26 users: a next page"
    next_page.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-rows tr")) == 26)
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
    driver.find_element(By.CSS_SELECTOR, "#new-key button.copy").click()
    wait.until(lambda d: text("new-key-copied") != "")
    status = upload(new_key)
    assert status == 200, status
    keys["first"] = new_key
    driver.save_screenshot(f"{shots}/user-created.png")


keys = {}


def user_page():
    open_user_from_list("ui-made")
    wait.until(lambda d: text("user-title") == "User ui-made" and len(rows("key-rows")) == 1)
    assert driver.find_element(By.ID, "u-name").get_attribute("value") == "Made in the UI"
    assert text("u-status") == "active"
    key_row = cells("key-rows")[0]
    assert key_row[0] == "primary" and key_row[2] == "active", key_row
    wait.until(lambda d: text("quota-bars").startswith("Requests: 1 "))
    assert "resets" in text("quota-reset-at"), text("quota-reset-at")
    assert driver.find_element(By.ID, "quota-requests").tag_name == "meter"


def whitelist_checked_while_typed():
    fill("u-ip_whitelist", "203.0.113.0/24\n10.0.0.0/33")
    wait.until(lambda d: "10.0.0.0/33" in text("uerr-ip_whitelist"))
    assert "prefix" in text("uerr-ip_whitelist"), text("uerr-ip_whitelist")
    # Not sent: the form refuses to save while the whitelist is wrong.
    driver.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    assert text("user-saved") == ""
    fill("u-ip_whitelist", "203.0.113.0/24\n127.0.0.1")
    wait.until(lambda d: text("uerr-ip_whitelist") == "")


def save_with_a_server_error_then_success():
    fill("u-rate_limits.requests_per_minute", "2000000")
    driver.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    wait.until(lambda d: text("uerr-rate_limits.requests_per_minute") != "")
    assert "between 1 and 1000000" in text("uerr-rate_limits.requests_per_minute")
    fill("u-rate_limits.requests_per_minute", "500")
    fill("u-quotas.monthly_requests", "1000")
    driver.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    wait.until(lambda d: text("user-saved") == "Saved.")
    stored = api_get("/api/v1/users/ui-made")
    assert stored["ip_whitelist"] == ["203.0.113.0/24", "127.0.0.1"], stored
    assert stored["rate_limits"]["requests_per_minute"] == 500, stored
    wait.until(lambda d: "Requests: 1 of 1000" in text("quota-bars"))
    driver.set_window_size(1280, 1000)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(f"{shots}/user-page.png")
    driver.set_window_size(1280, 800)


def open_user_from_list(user_id):
    """Searches the users list for `user_id` and follows its link."""
    fill("users-q", user_id)
    driver.find_element(By.CSS_SELECTOR, "#users-search button").click()
    wait.until(lambda d: [r[0] for r in cells("user-rows")] == [user_id])
    driver.find_element(By.LINK_TEXT, user_id).click()


def api_get(path, with_key=None):
    request = urllib.request.Request(base + path, headers={"X-API-Key": with_key or key})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def rotate_with_grace():
    Select(driver.find_element(By.ID, "rotate-grace")).select_by_visible_text("1 hour")
    driver.find_element(By.CSS_SELECTOR, "#rotate-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "user-key").is_displayed())
    new_key = driver.find_element(By.ID, "user-key-value").get_attribute("value")
    assert new_key.startswith("imgproxy_ui-made_") and new_key != keys["first"], new_key
    assert "not be shown again" in text("user-key")
    assert "works until" in text("rotate-done"), text("rotate-done")
    wait.until(lambda d: len(rows("key-rows")) == 2)
    states = sorted(row[2] for row in cells("key-rows"))
    assert states == ["active", "expiring"], states
    # During its grace the old key still works, and so does the new one.
    assert upload(keys["first"]) == 200
    assert upload(new_key) == 200
    keys["second"] = new_key
    driver.save_screenshot(f"{shots}/user-rotated.png")


def revoke_with_confirmation():
    old = [r for r in cells("key-rows") if r[2] == "expiring"][0]
    button = driver.find_element(By.CSS_SELECTOR, f'button.revoke[data-key="{old[1]}"]')
    button.click()
    wait.until(lambda d: d.find_element(By.ID, "confirm").is_displayed())
    assert old[1] in text("confirm-question")
    driver.find_element(By.CSS_SELECTOR, '#confirm button[value="no"]').click()
    assert upload(keys["first"]) == 200, "cancelled: the key still works"
    button.click()
    wait.until(lambda d: d.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-yes").click()
    wait.until(lambda d: sorted(r[2] for r in cells("key-rows")) == ["active", "revoked"])
    assert upload(keys["first"]) == 401


def suspend_then_reactivate():
    driver.find_element(By.ID, "u-suspend").click()
    wait.until(lambda d: text("u-status") == "suspended")
    assert upload(keys["second"]) == 403
    assert text("u-suspend") == "Reactivate"
    driver.find_element(By.ID, "u-suspend").click()
    wait.until(lambda d: text("u-status") == "active")
    assert upload(keys["second"]) == 200


def delete_with_confirmation():
    driver.get(base + "/admin#user/b-00")
    wait.until(lambda d: text("user-title") == "User b-00" and text("u-status") == "active")
    driver.find_element(By.ID, "u-delete").click()
    wait.until(lambda d: d.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.CSS_SELECTOR, '#confirm button[value="no"]').click()
    assert api_get("/api/v1/users/b-00")["status"] == "active"
    driver.find_element(By.ID, "u-delete").click()
    wait.until(lambda d: d.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-yes").click()
    wait.until(lambda d: d.find_element(By.ID, "users").is_displayed())
    # A soft delete: the record stays for the audit, its keys stop working.
    assert api_get("/api/v1/users/b-00")["status"] == "deleted"
    assert upload(b00_key) == 401


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
    go("audit")
    wait.until(lambda d: len(rows("audit-rows")) > 0)
    fill("audit-target", "ui-made")
    driver.find_element(By.CSS_SELECTOR, "#audit-filter button").click()
    # Newest first: create, update (save), rotate, revoke, suspend, reactivate.
    expected = ["user.update", "user.update", "key.revoke", "key.rotate", "user.update", "user.create"]
    wait.until(lambda d: [r[2] for r in cells("audit-rows")] == expected)
    assert all(r[1] == "legacy" and r[3] == "ui-made" for r in cells("audit-rows"))
    fill("audit-action", "user.create")
    driver.find_element(By.CSS_SELECTOR, "#audit-filter button").click()
    wait.until(lambda d: len(rows("audit-rows")) == 1)
    driver.save_screenshot(f"{shots}/audit.png")


def configuration_page():
    go("config")
    wait.until(lambda d: len(rows("config-rows")) > 20)
    table = {r[0]: r for r in cells("config-rows")}
    assert table["legacy.api_key"][1] == '"***"', table["legacy.api_key"]
    assert key not in text("config"), "the legacy key is on the page"
    assert table["backends[0].weight"][2] == "reloads", table["backends[0].weight"]
    assert table["server.port"][2] == "restart", table["server.port"]
    driver.save_screenshot(f"{shots}/configuration.png")


def traffic(seconds):
    """Conversions with the admin key, ~20 a second, so the charts have something to show."""
    def run():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            request = urllib.request.Request(public + CONVERT, headers={"X-API-Key": key})
            try:
                urllib.request.urlopen(request).read()
            except urllib.error.HTTPError:
                pass
            time.sleep(0.05)
    threading.Thread(target=run, daemon=True).start()


def live_charts_and_threshold_events():
    traffic(18)
    go("overview")
    # Three polls (5 s apart) give two intervals: lines of two points.
    points = "const line = document.querySelector('#chart-rate polyline');" \
        "return line ? line.getAttribute('points') : '';"
    wait_long.until(lambda d: len(d.execute_script(points).split()) >= 2)
    for chart in ("chart-rate", "chart-errors", "chart-p95"):
        label = driver.find_element(By.ID, chart).get_attribute("aria-label")
        assert "no data" not in label, label
    events = cells("threshold-rows")
    assert [(r[1], r[3]) for r in events] == [("b-quota", "100 %"), ("b-quota", "90 %"), ("b-quota", "80 %")], events
    driver.save_screenshot(f"{shots}/overview.png")


def network_errors_show_a_message():
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        go("backends")
        wait.until(lambda d: "cannot be reached" in text("backends-error"))
        assert driver.find_element(By.ID, "backends").is_displayed()
        driver.save_screenshot(f"{shots}/offline.png")
    finally:
        driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                               {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_long.until(lambda d: text("backends-error") == "" and len(rows("backend-rows")) == 2)


def keyboard_navigation():
    # A fresh load without a fragment (a fragment would move the Tab starting point).
    driver.get(base + "/admin")
    wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed() and d.find_element(By.ID, "overview").is_displayed())
    # From the top of a fresh page, the first Tab reaches the first page link.
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    assert (focused.get_attribute("href") or "").endswith("#overview"), focused.get_attribute("outerHTML")
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert (driver.switch_to.active_element.get_attribute("href") or "").endswith("#users")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait.until(lambda d: d.find_element(By.ID, "users").is_displayed())
    focus = driver.execute_script(
        "const e = document.activeElement;"
        "return [e.outerHTML.slice(0, 80), e.matches(':focus-visible'), getComputedStyle(e).outlineStyle]")
    assert focus[0].startswith('<h2 id="users-title"') and focus[2] != "none", focus


def labels_dark_mode_and_phone_width():
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter((e) => e.labels.length === 0).map((e) => e.id)")
    assert unlabelled == [], unlabelled
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 24, 28)", background
    driver.save_screenshot(f"{shots}/overview-dark.png")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(390, 844)
    for page in ("users", "audit", "config", "overview"):
        go(page)
        wait.until(lambda d: d.find_element(By.ID, page).is_displayed())
        wide = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, f"{page} scrolls sideways at phone width"
    driver.save_screenshot(f"{shots}/overview-phone.png")
    driver.set_window_size(1280, 800)


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
    open_user_from_list("ui-made")
    wait.until(lambda d: text("user-title") == "User ui-made" and len(rows("key-rows")) == 2)
    assert driver.find_element(By.ID, "u-name").get_attribute("disabled") == "true"
    for hidden in ("quota-reset", "key-form", "rotate-form", "u-delete"):
        assert not driver.find_element(By.ID, hidden).is_displayed(), hidden
    assert not driver.find_elements(By.CSS_SELECTOR, "button.revoke")
    status = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch("/api/v1/users/ui-made", {method: "PUT",
            headers: {"X-API-Key": sessionStorage.getItem("imgproxy-gateway.key"),
                      "Content-Type": "application/json"},
            body: JSON.stringify({status: "suspended"})})
          .then((r) => done(r.status));
        """
    )
    assert status == 403, status
    assert upload(keys["second"]) == 200
    driver.find_element(By.ID, "logout").click()
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())


def a_user_sees_only_its_own_record():
    log_in(keys["second"])
    wait.until(lambda d: text("user-title") == "User ui-made" and len(rows("key-rows")) == 2)
    for link in ("overview", "users", "backends", "audit", "config"):
        assert not driver.find_element(By.CSS_SELECTOR, f'a[href="#{link}"]').is_displayed(), link
    assert driver.find_element(By.ID, "rotate-form").is_displayed(), "a user rotates its own key"
    assert not driver.find_element(By.ID, "key-form").is_displayed()
    driver.get(base + "/admin#users")
    wait.until(lambda d: d.find_element(By.ID, "user").is_displayed())
    assert not driver.find_element(By.ID, "users").is_displayed()


scenario("login with a wrong key", wrong_key)
scenario("login as admin", admin_login)
scenario("overview shows both backends", overview)
scenario("backends page", backends)
scenario("users page, server-side paging", users_page)
scenario("a hostile name renders as text", xss_as_text)
scenario("a validation error shows at its field", field_error_at_its_field)
scenario("create a user; its key, shown once, uploads", create_user_and_upload)
scenario("the user page shows fields, quota and keys", user_page)
scenario("the IP whitelist is checked while typed", whitelist_checked_while_typed)
scenario("a server error shows at its field; a save lands", save_with_a_server_error_then_success)
scenario("rotate with 1 h grace: the new key shown once, both keys work", rotate_with_grace)
scenario("revoke asks first; the revoked key gets 401", revoke_with_confirmation)
scenario("suspend: the key gets 403; reactivate: 200", suspend_then_reactivate)
scenario("delete asks first and removes the user", delete_with_confirmation)
scenario("the audit page lists the changes", audit_lists_the_changes)
scenario("the configuration page shows no secret", configuration_page)
scenario("live charts and quota threshold events", live_charts_and_threshold_events)
scenario("labels, dark mode and phone width", labels_dark_mode_and_phone_width)
scenario("a network error shows a message, not a blank page", network_errors_show_a_message)
scenario("keyboard: Tab reaches the pages, Enter opens one, focus is visible", keyboard_navigation)
scenario("no request leaves the origin", no_other_origin)
scenario("logout clears the key", logout)
scenario("a viewer sees no edit controls, and a forced edit is refused", viewer_sees_no_edit_controls)
scenario("a user sees only its own record", a_user_sees_only_its_own_record)
driver.quit()
