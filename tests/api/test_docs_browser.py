"""GET /docs in a real headless browser (Debian's chromium + chromium-driver, python3-selenium).

The page must load with every request answered by catalogd itself (no failed request, nothing
fetched from anywhere but this server or a data: URL, no console error: a CSP violation is
one), list every operation of openapi.json, and "Try it out" on POST /products must create a
product that the API then serves. Skipped only when the browser packages are not installed
(`make test` installs them); set CATALOGD_REQUIRE_BROWSER=1 to make that a failure too. Every
wait has a deadline.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import uniq_sku, wait_until

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
PAGE_DEADLINE = 30.0  # seconds for the page to load and Swagger UI to render every operation
ACTION_DEADLINE = 15.0  # seconds for one click to show its result

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    SELENIUM = True
except ImportError:  # pragma: no cover - depends on the installed packages
    SELENIUM = False

MISSING = [what for what, ok in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER),
                                 ("python3-selenium", SELENIUM)) if not ok]
if MISSING and os.environ.get("CATALOGD_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"CATALOGD_REQUIRE_BROWSER=1 but not installed: {', '.join(MISSING)}")
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (make test installs them)")


@pytest.fixture
def browser():
    """Headless Chromium with its network (performance) and console logs, in a private
    profile, kept off every network but loopback's."""
    profile = tempfile.mkdtemp(prefix="catalogd-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--no-proxy-server", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-default-apps",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(PAGE_DEADLINE)
        driver.set_script_timeout(ACTION_DEADLINE)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def network_events(driver):
    """The DevTools Network.* events logged since the last call, as (method, params)."""
    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append((message["method"], message["params"]))
    return events


def check_network(events, base):
    """Every request of the page (its document's loader: the new-tab page the browser shows first
    is left out) got
    an answer from this server, or was a data: URL, with a status below 400, and none failed.
    Returns {request id: (method, url, request headers, status)}."""
    loaders = {params["loaderId"] for method, params in events
              if method == "Network.requestWillBeSent" and params.get("type") == "Document"
              and params["request"]["url"] == base + "/docs"}
    assert loaders, "the network log has no load of /docs"
    requests_seen, answered, failed = {}, {}, {}
    for method, params in events:
        if method == "Network.requestWillBeSent" and params.get("loaderId") in loaders:
            req = params["request"]
            requests_seen[params["requestId"]] = (req["method"], req["url"], req["headers"])
        elif method == "Network.responseReceived":
            answered[params["requestId"]] = params["response"]["status"]
        elif method == "Network.loadingFailed":
            failed[params["requestId"]] = params
    seen = {}
    for request_id, (method, url, headers) in requests_seen.items():
        assert request_id not in failed, f"request failed: {method} {url}: {failed[request_id]}"
        assert url.startswith(base + "/") or url.startswith("data:"), (
            f"the page fetched something from elsewhere: {method} {url}")
        status = answered.get(request_id)
        assert status is not None, f"no response to {method} {url}"
        assert status < 400, f"{method} {url}: {status}"
        seen[request_id] = (method, url, headers, status)
    return seen


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def documented_operations():
    return {(method.upper(), path) for path, item in SPEC["paths"].items()
            for method in METHODS if method in item}


def rendered_operations(driver):
    return {(block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip(),
             block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
                 "data-path"))
            for block in driver.find_elements(By.CSS_SELECTOR, ".opblock")}


def open_docs(driver, base):
    network_events(driver)  # from before this page (a new browser's own start): not ours
    driver.get(base + "/docs")
    expected = documented_operations()
    try:
        WebDriverWait(driver, PAGE_DEADLINE).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected))
    except TimeoutException:
        raise AssertionError(
            f"Swagger UI did not render {len(expected)} operations within {PAGE_DEADLINE}s; "
            f"console: {console_errors(driver)}; page: {driver.page_source[:2000]}") from None
    return expected


def test_docs_page_loads_everything_from_this_server(browser, stack):
    expected = open_docs(browser, stack.base)
    assert browser.title == "catalogd API"
    assert rendered_operations(browser) == expected
    time.sleep(0.5)  # let late requests (icons) reach the log
    seen = check_network(network_events(browser), stack.base)
    urls = {url for _, url, _, _ in seen.values()}
    assert stack.base + "/docs" in urls and stack.base + "/openapi.json" in urls
    tag = stack.get("/docs").headers["ETag"].strip('"')
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "catalogd-docs.js",
                 "favicon-32x32.png"):
        assert f"{stack.base}/docs/{tag}/{name}" in urls, (name, sorted(urls))
    assert console_errors(browser) == []


def try_create_product(browser, name):
    """Opens POST /products on the page, clicks Try it out, fills the body with a new product
    called "name", executes it; returns (the status Swagger UI shows, the product's SKU)."""
    operation = browser.find_element(By.ID, "operations-commands-createProduct")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait = WebDriverWait(browser, ACTION_DEADLINE)
    wait.until(lambda d: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    body = wait.until(
        lambda d: operation.find_element(By.CSS_SELECTOR, "textarea.body-param__text"))
    sku = uniq_sku("DOCS")
    text = json.dumps({"sku": sku, "name": name, "price": 12.5, "stock": 3})
    body.send_keys(Keys.CONTROL, "a")
    body.send_keys(Keys.DELETE)
    body.send_keys(text)
    assert json.loads(body.get_attribute("value")) == json.loads(text)
    operation.find_element(By.CSS_SELECTOR, ".execute").click()

    def status_shown(_):
        cells = operation.find_elements(By.CSS_SELECTOR,
                                        ".live-responses-table tbody .response-col_status")
        return cells[0].text.strip() if cells and cells[0].text.strip() else None
    try:
        return wait.until(status_shown), sku
    except TimeoutException:
        raise AssertionError(f"no response shown within {ACTION_DEADLINE}s; console: "
                             f"{console_errors(browser)}") from None


def served_view(stack, sku):
    """The product with "sku" from the API, once the read side has it (bounded wait)."""
    def served():
        resp = stack.get(f"/products/by-sku/{sku}")
        return resp if resp.status_code == 200 else None
    view = wait_until(served, 10.0, what=f"GET /products/by-sku/{sku}").json()
    assert stack.get(f"/products/{view['id']}").json() == view
    return view


def test_try_it_out_creates_a_product(browser, stack):
    open_docs(browser, stack.base)
    loaded = network_events(browser)  # the page's own requests: checked by the test above
    status, sku = try_create_product(browser, "Tried from /docs")
    assert status == "201", status

    # the request went to this server, same origin, and passed the Host/Origin checks
    posts = [(url, headers, code) for method, url, headers, code
             in check_network(loaded + network_events(browser), stack.base).values()
             if method == "POST"]
    assert len(posts) == 1, posts
    url, headers, code = posts[0]
    assert url == stack.base + "/products" and code == 201
    origin = {k.lower(): v for k, v in headers.items()}.get("origin")
    assert origin in (None, stack.base), origin
    assert console_errors(browser) == []

    # and the API serves the product
    view = served_view(stack, sku)
    assert (view["sku"], view["name"], view["stock"], view["price"]) == (
        sku, "Tried from /docs", 3, 12.5)


def test_try_it_out_with_the_api_token(browser, stack_factory):
    """With --api-token, a command tried without the token is 401; after Authorize (the
    document's bearerAuth scheme) the same page creates the product."""
    token = "docs-page-token"
    guarded = stack_factory("docs-token", extra_args=("--api-token", token))
    open_docs(browser, guarded.base)
    status, _ = try_create_product(browser, "No token")
    assert status == "401", status
    browser.refresh()
    open_docs(browser, guarded.base)
    wait = WebDriverWait(browser, ACTION_DEADLINE)
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    field = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".auth-container input"))
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".dialog-ux"))
    status, sku = try_create_product(browser, "With the token")
    assert status == "201", status
    assert served_view(guarded, sku)["name"] == "With the token"


def test_page_cannot_reach_other_origins(browser, stack):
    """The page's Content-Security-Policy (connect-src 'self') keeps its scripts on this
    server: a fetch to another origin is refused before it leaves the browser."""
    open_docs(browser, stack.base)
    message = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('http://example.invalid/openapi.json').then(() => done('fetched'),"
        " (e) => done('blocked: ' + e.message));")
    assert message.startswith("blocked"), message
    violations = [e["message"] for e in console_errors(browser)]
    assert any("Content Security Policy" in m for m in violations), violations
