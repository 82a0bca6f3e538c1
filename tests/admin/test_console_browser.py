"""The console in a real browser: Debian's chromium, headless, driven by Selenium against a live
server and a real Redis. An operator's paths, click by click, with Redis and the audit log
checked afterwards. A failed test leaves ``failure.png`` in its temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from blobcache.cache import DescriptorCache
from blobcache.models import AuditEntry
from tests.helpers.api import LAYER
from tests.helpers.console import put, values
from tests.helpers.entries import D1, D2, D3, D4, D5, D6
from tests.helpers.storage_tree import ALPINE, APP, StorageTree, populate_stale

pytestmark = [pytest.mark.standalone, pytest.mark.django_db(transaction=True)]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
PASSWORD = "browser-pw"


def chromium_binaries() -> tuple[str, str]:
    """Debian's chromium and its driver; missing fails under CI, skips on a developer machine."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "the browser tests need Debian's chromium and chromium-driver (see .ci/run)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def start_browser(folder: Path) -> Any:
    """Headless chromium with a fresh profile in ``folder``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={folder / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(5)
    return driver


def close_browser(driver: Any, failed: bool, folder: Path) -> None:
    """A failed test leaves the page as the browser showed it, for whoever reads the log."""
    try:
        if failed:
            driver.save_screenshot(str(folder / "failure.png"))
    finally:
        driver.quit()


@pytest.fixture()
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    driver = start_browser(tmp_path)
    yield driver
    report = getattr(request.node, "report_call", None)
    close_browser(driver, report is None or report.failed, tmp_path)


@pytest.fixture()
def operator(db: Any) -> User:
    return User.objects.create_superuser("operator", "operator@example.com", PASSWORD)


class Operator:
    """What an operator does in the browser, in the admin's own words and buttons."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def log_in(self, username: str) -> None:
        from selenium.webdriver.common.by import By

        self.open("/admin/login/?next=/admin/")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        self.wait_for_title("Site administration")

    def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.LINK_TEXT, text).click()

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def wait_for_title(self, title: str) -> None:
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, 10).until(expected_conditions.title_contains(title))

    def wait_for(self, css: str) -> None:
        """Until an element the next page shows is there (a form page posted back to itself
        keeps its title)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, 10).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def table(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.ID, "result_list").text)

    def messages(self) -> list[str]:
        from selenium.webdriver.common.by import By

        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, ".messagelist li")]

    def link_of(self, digest: str, text: str) -> Any:
        """The link ``text`` ("Change", "Clear") on the row of ``digest``."""
        from selenium.webdriver.common.by import By

        row = self.driver.find_element(By.XPATH, f"//tr[td/a[text()='{digest}']]")
        return row.find_element(By.LINK_TEXT, text)

    def fill(self, **fields: str) -> None:
        from selenium.webdriver.common.by import By

        for name, value in fields.items():
            box = self.driver.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)


@pytest.fixture()
def console(browser: Any, live_server: Any, operator: User) -> Operator:
    person = Operator(browser, live_server.url)
    person.log_in(operator.get_username())
    return person


def open_repository(console: Operator, name: str) -> None:
    console.click_link("Cached descriptors")
    console.wait_for_title("Blob descriptor cache")
    console.click("#console-repositories")
    console.wait_for_title("Repositories")
    console.click_link(name)
    console.wait_for_title(name)


def audit_log_lists(console: Operator, *texts: str) -> None:
    console.open("/admin/blobcache/auditentry/")
    shown = console.text()
    for text in texts:
        assert text in shown


def test_clear_one_entry_through_its_confirmation(
    console: Operator, cache: DescriptorCache, redis_client: Any
) -> None:
    put(cache, ALPINE, D1, LAYER)
    put(cache, ALPINE, D2)
    open_repository(console, ALPINE)
    assert "2 members." in console.text()
    console.link_of(D1, "Clear").click()
    console.wait_for_title("Are you sure?")
    assert D1 in console.text()
    console.click("#confirm")
    console.wait_for_title(ALPINE)
    assert console.messages() == [f"Cleared {D1} from {ALPINE}."]
    assert D1 not in console.table()
    assert D2 in console.table()
    assert values(redis_client) == {
        f"blobs::{D2}": {"digest": D2, "size": "42", "mediatype": "application/octet-stream"},
        f"repository::{ALPINE}::blobs": {D2},
        f"repository::{ALPINE}::blobs::{D2}": {"mediatype": "application/octet-stream"},
    }
    assert list(AuditEntry.objects.values_list("interface", "user", "operation", "digest")) == [
        ("admin", "operator", "clear", D1)
    ]
    audit_log_lists(console, D1, ALPINE)


def test_correct_an_entry_then_add_one(
    console: Operator, cache: DescriptorCache, redis_client: Any
) -> None:
    put(cache, ALPINE, D1)
    open_repository(console, ALPINE)
    console.link_of(D1, "Change").click()
    console.wait_for_title(f"Set a descriptor in {ALPINE}")
    console.fill(size="-1")
    console.click("input[name=_save]")
    console.wait_for(".errornote")
    assert "Please correct the error below." in console.text()
    assert redis_client.hget(f"blobs::{D1}", "size") == "42"
    console.fill(size="4096", media_type=LAYER)
    console.click("input[name=_save]")
    console.wait_for(".messagelist")  # the form's own title names the repository too
    assert console.messages() == [f"Updated {D1} in {ALPINE}."]
    console.click("#set-descriptor")
    console.wait_for_title(f"Set a descriptor in {ALPINE}")
    console.fill(digest=D2, size="10", media_type=LAYER)
    console.click("input[name=_save]")
    console.wait_for(".messagelist")  # the form's own title names the repository too
    assert console.messages() == [f"Created {D2} in {ALPINE}."]
    assert "2 members." in console.text()
    assert values(redis_client) == {
        f"blobs::{D1}": {"digest": D1, "size": "4096", "mediatype": "application/octet-stream"},
        f"blobs::{D2}": {"digest": D2, "size": "10", "mediatype": LAYER},
        f"repository::{ALPINE}::blobs": {D1, D2},
        f"repository::{ALPINE}::blobs::{D1}": {"mediatype": LAYER},
        f"repository::{ALPINE}::blobs::{D2}": {"mediatype": LAYER},
    }
    assert list(
        AuditEntry.objects.order_by("id").values_list("interface", "user", "operation", "digest")
    ) == [("admin", "operator", "set", D1), ("admin", "operator", "set", D2)]


def test_clear_a_repository_scope_after_its_dry_run(
    console: Operator, cache: DescriptorCache, redis_client: Any
) -> None:
    put(cache, ALPINE, D1)
    put(cache, ALPINE, D2)
    put(cache, APP, D1)
    open_repository(console, ALPINE)
    console.click("#clear-scope")
    console.wait_for_title("Are you sure?")
    assert "Dry run: 2 entries, 3 keys." in console.text()
    console.click("#confirm")
    console.wait_for_title(ALPINE)
    assert console.messages() == [f"Cleared 2 entries of {ALPINE} (3 keys deleted)."]
    assert "0 members." in console.text()
    assert set(values(redis_client)) == {
        f"blobs::{D1}", f"blobs::{D2}", f"repository::{APP}::blobs",
        f"repository::{APP}::blobs::{D1}",
    }
    assert list(
        AuditEntry.objects.values_list("operation", "repository", "cleared", "keys_deleted")
    ) == [("clear_repository_scope", ALPINE, 2, 3)]
    audit_log_lists(console, ALPINE)


def test_reconcile_dry_run_then_apply(
    console: Operator, cache: DescriptorCache, redis_client: Any, settings: Any,
    tmp_path: Path, monkeypatch: Any,
) -> None:
    from blobcache.admin import console as console_module

    monkeypatch.setattr(console_module, "reports", console_module.ReportStore(tmp_path / "reports"))
    tree = StorageTree(tmp_path / "storage")
    populate_stale(cache, redis_client, tree)
    settings.BLOBCACHE = {**settings.BLOBCACHE, "STORAGE_ROOT": str(tree.root)}
    before = values(redis_client)
    console.click_link("Cached descriptors")
    console.click("#console-reconcile")
    console.wait_for_title("Reconcile with storage")
    console.click("#dry-run")
    console.wait_for_title("Reconcile with storage")
    assert console.messages() == ["Reconcile dry run would clear 5 entries (5 keys; 0 skipped)."]
    assert values(redis_client) == before
    shown = console.text()
    for digest in (D1, D2, D4, D5):
        assert digest in shown
    console.click("#apply")
    console.wait_for_title("Are you sure?")
    console.click("#confirm")
    console.wait_for_title("Reconcile with storage")
    assert console.messages() == ["Reconcile cleared 5 entries (5 keys; 0 skipped)."]
    assert set(values(redis_client)) == {
        f"blobs::{D1}", f"blobs::{D3}", f"blobs::{D6}",
        f"repository::{ALPINE}::blobs", f"repository::{ALPINE}::blobs::{D1}",
        f"repository::{APP}::blobs", f"repository::{APP}::blobs::{D3}",
    }
    rows = AuditEntry.objects.order_by("id").values_list("operation", "dry_run", "cleared")
    assert list(rows) == [("reconcile", True, 5), ("reconcile", False, 5)]


def test_a_failed_browser_test_leaves_a_screenshot(live_server: Any, tmp_path: Path) -> None:
    for failed in (True, False):
        folder = tmp_path / str(failed)
        folder.mkdir()
        driver = start_browser(folder)
        driver.get(live_server.url + "/admin/login/")
        close_browser(driver, failed, folder)
        shot = folder / "failure.png"
        assert shot.exists() == failed
        if failed:
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
