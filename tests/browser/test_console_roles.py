"""What a client-role key sees in the console, the admin pages (API keys, webhooks),
and the pages at a phone's width."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import PASSWORD, Live, new_page, screenshot
from tests.browser.test_console import wait_rendered

PHONE = {"width": 390, "height": 844}


def _api(live: Live, key: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"X-API-Key": key}, timeout=60)


def _gallery_with_obama(api: httpx.Client, name: str, faces_dir: Path) -> str:
    gallery = api.post("/v1/galleries", json={"name": name}).json()["id"]
    subject = api.post(f"/v1/galleries/{gallery}/subjects", json={"external_id": "obama"}).json()[
        "id"
    ]
    photo = faces_dir / "identities" / "obama" / "obama1.jpg"
    enrolled = api.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
    )
    assert enrolled.status_code == 201, enrolled.text
    return gallery


def _sign_in(page, live: Live, key: str, landing: str) -> None:  # noqa: ANN001
    page.goto(live.url + "/console")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("input[name=identity]", key)
    page.press("input[name=identity]", "Enter")
    wait_rendered(page, landing)


def _no_sideways_scroll(page) -> None:  # noqa: ANN001
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at {width[1]} px: {width[0]} px wide"


def test_client_key_sees_only_its_galleries_and_no_admin_pages(
    live: Live,
    browser,
    faces_dir: Path,  # noqa: ANN001
) -> None:
    admin = _api(live, live.key("admin"))
    mine = _gallery_with_obama(admin, "lobby", faces_dir)
    _gallery_with_obama(admin, "vault", faces_dir)
    client_key = live.key("client", [mine], name="lobby-kiosk")

    page = new_page(browser, **PHONE)
    _sign_in(page, live, client_key, "#/test")
    nav = page.locator("#nav a").all_inner_texts()
    assert nav == ["Test", "History", "Liveness"], nav
    assert "lobby-kiosk" in page.inner_text("#who") and "client" in page.inner_text("#who")

    # Only the key's own gallery is offered, by name, though a client cannot list them.
    options = page.locator("select[name=gallery] option").all_inner_texts()
    assert options == ["lobby"], options
    page.set_input_files("#probe", str(faces_dir / "identities" / "obama" / "obama3.jpg"))
    page.wait_for_selector("#detected")
    page.click("#run-search")
    page.wait_for_selector("#test-result table")
    first = page.locator("#test-result tbody tr").first
    assert first.locator("td[data-label=Subject]").inner_text() == "obama"
    _no_sideways_scroll(page)
    screenshot(page, "test-phone")

    # History: its own call only (the admin's enrolments are not decisions).
    page.click("#nav a:text('History')")
    wait_rendered(page, "#/history")
    assert page.locator("tbody tr.clickable").count() == 1
    _no_sideways_scroll(page)
    screenshot(page, "history-phone")

    # Admin and operator pages say why they are not there; the API refuses them too.
    refused = (("#/keys", "admin"), ("#/galleries", "operator"), ("#/webhooks", "operator"))
    for hash_, role in refused:
        page.goto(f"{live.url}/console{hash_}")
        page.locator("#page", has_text=f"needs the {role} role").wait_for()
    client = _api(live, client_key)
    assert client.get("/v1/galleries").status_code == 403
    assert client.get("/v1/api-keys").status_code == 403
    assert page.errors == []  # type: ignore[attr-defined]


def test_admin_pages_keys_and_webhooks(live: Live, browser) -> None:  # noqa: ANN001
    page = new_page(browser)
    admin_key = live.key("admin", name="console-admin")
    _sign_in(page, live, admin_key, "#/galleries")

    # API keys: the new key is shown once and works; revoked, it stops working.
    page.click("#nav a:text('API keys')")
    wait_rendered(page, "#/keys")
    page.fill("#new-key input[name=name]", "door-kiosk")
    page.select_option("#new-key select[name=role]", "client")
    page.click("#new-key button[type=submit]")
    shown = page.locator("#key-once code").inner_text()
    assert shown.startswith("fp_")
    me = _api(live, shown).get("/v1/me")
    assert me.status_code == 200 and me.json()["role"] == "client"
    screenshot(page, "keys")
    row = page.locator("tr", has_text="door-kiosk")
    row.locator("button:text('Revoke')").click()
    row.locator("button:text('Really revoke?')").click()
    page.locator("tr", has_text="door-kiosk").locator("text=revoked").wait_for()
    assert _api(live, shown).get("/v1/me").status_code == 401
    page.reload()  # the key is not kept anywhere the page can show it again
    wait_rendered(page, "#/keys")
    assert shown not in page.content()

    # Webhooks: create one (the secret is shown once), send a test event, redeliver.
    page.click("#nav a:text('Webhooks')")
    wait_rendered(page, "#/webhooks")
    page.fill("#new-webhook input[name=url]", f"{live.url}/no-such-receiver")
    page.check("#new-webhook input[value='verification.completed']")
    page.click("#new-webhook button[type=submit]")
    assert page.locator("#secret-once code").inner_text().startswith("whsec_")
    screenshot(page, "webhooks")
    page.locator("tr a", has_text="/no-such-receiver").click()
    wait_rendered(page, "#/webhooks/")
    page.click("#send-test")
    page.wait_for_selector("text=Test event queued.")
    # The receiver answers 404: the dispatcher records a failed attempt to retry.
    for _ in range(60):
        page.click("button:text('Refresh')")
        page.wait_for_timeout(500)
        if "HTTP 404" in page.inner_text("tbody"):
            break
    assert "webhook.test" in page.inner_text("tbody")
    assert "HTTP 404" in page.inner_text("tbody")
    page.click("tbody button:text('Redeliver')")
    page.wait_for_selector("text=Queued again.")
    screenshot(page, "webhook-deliveries")
    assert page.errors == []  # type: ignore[attr-defined]


def test_pages_fit_a_phone(live: Live, browser, faces_dir: Path) -> None:  # noqa: ANN001
    admin_key = live.key("admin")
    gallery = _gallery_with_obama(_api(live, admin_key), "phone-gallery", faces_dir)
    # A reindex to another model under way: the list shows how far it is.
    from service.domain import reindex

    components = live.container.components
    reindex.start(
        live.container.engine, components.index, components.pipeline,
        gallery_id=uuid.UUID(gallery), to_model="dlib-resnet-v1",
    )  # fmt: skip
    page = new_page(browser, **PHONE)
    _sign_in(page, live, admin_key, "#/galleries")
    progress = page.locator(".reindex").inner_text()
    assert "reindexing to dlib-resnet-v1: 0 of 1 faces" in progress, progress
    _no_sideways_scroll(page)
    screenshot(page, "galleries-phone")
    page.click("a:text('phone-gallery')")
    wait_rendered(page, f"#/galleries/{gallery}")
    _no_sideways_scroll(page)
    page.click("a:text('obama')")
    wait_rendered(page, f"#/galleries/{gallery}/subjects/")
    page.wait_for_selector("#faces img.thumb[src^='blob:']")
    _no_sideways_scroll(page)
    screenshot(page, "subject-phone")
    # Deleting a face takes a second click.
    delete = page.locator("#faces button.danger")
    delete.click()
    assert page.locator("#faces img.thumb").count() == 1
    page.locator("#faces button:text('Really delete?')").click()
    page.wait_for_selector("#faces .empty")
    assert "0 faces" in page.inner_text(".stats")
    for hash_ in ("#/history", "#/charts", "#/webhooks", "#/keys"):
        page.click(f"#nav a[href='{hash_}']")
        wait_rendered(page, hash_)
        _no_sideways_scroll(page)
    assert page.errors == []  # type: ignore[attr-defined]


# An access token that is within the console's 30 s refresh margin a second after it
# is issued: every page after that refreshes first.
@pytest.mark.parametrize("live", [{"access_token_ttl_s": 31}], indirect=True)
def test_a_password_sign_in_refreshes_its_tokens(live: Live, browser) -> None:  # noqa: ANN001
    live.user("night-shift@example.org", role="operator")
    page = new_page(browser)
    page.goto(live.url + "/console")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("input[name=identity]", "night-shift@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    wait_rendered(page, "#/galleries")
    assert "API keys" not in page.inner_text("#nav")  # an operator: no admin page

    def stored() -> dict:
        return json.loads(page.evaluate("sessionStorage.getItem('faceprint.credentials')"))

    first = stored()
    page.wait_for_timeout(1500)
    page.click("#nav a:text('History')")
    wait_rendered(page, "#/history")
    second = stored()
    assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
    assert page.locator("tbody").count() == 1  # the page loaded with the new token
    # Signing out forgets the tokens.
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('faceprint.credentials')") is None
    assert page.errors == []  # type: ignore[attr-defined]
