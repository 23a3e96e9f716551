"""Logins end to end: a local OpenID Connect provider (oidc-provider-mock), `streamlit run app.py`
with ``[auth]`` on, and Chromium logged in as Alice and as Bob in two browser contexts.

Alice's workspace holds the cohort "tiny" before the server starts. Bob cannot see it in his list,
open it by a deep link or guess its name; after Alice shares it with his address from the sidebar,
he sees it read-only. The server's log must not carry any of the cohort's patient ids.
Screenshots: tests/artifacts/login-screen.png, login-alice.png, login-bob-refused.png, login-bob-shared.png.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from core.store.users import Accounts, user_id
from core.store.workspace import Workspace
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, settle
from tests.oidc_support import log_in, login_server, oidc_provider, write_secrets

pytestmark = BROWSER_ONLY

USERS = {
    "alice": {"email": "alice@hospital.example", "name": "Alice Doe"},
    "bob": {"email": "bob@hospital.example", "name": "Bob Roe"},
}


def sidebar(page):
    return page.locator("[data-testid=stSidebar]")


def test_two_users_private_workspaces_and_a_read_only_share(browser, browser_context_args, app_workspace_template, tmp_path, artifacts):
    root = tmp_path / "root"
    with oidc_provider(USERS) as issuer:
        alice_folder = Accounts(root).workspace_path(user_id(issuer, "alice"))
        shutil.copytree(app_workspace_template, alice_folder)
        patient_ids = list(Workspace(alice_folder).load("tiny").patients.index)
        log = tmp_path / "streamlit.log"
        with login_server(root, write_secrets(tmp_path, issuer), log) as url:
            alice_context = browser.new_context(**browser_context_args)
            bob_context = browser.new_context(**browser_context_args)
            alice, bob = alice_context.new_page(), bob_context.new_page()
            for page in (alice, bob):
                page.set_default_timeout(TIMEOUT_MS)

            # Before logging in: only the login screen.
            alice.goto(url)
            alice.get_by_role("button", name="Log in").wait_for()
            alice.wait_for_selector(IDLE)
            expect(alice.get_by_role("heading", name="Cohort explorer")).to_have_count(0)
            alice.screenshot(path=str(artifacts / "login-screen.png"))

            # Alice sees her cohort, and its patients' page.
            log_in(alice, url, "alice")
            assert_page_readable(alice)
            expect(sidebar(alice).locator('input[aria-label="Cohort"]')).to_have_value("tiny")
            alice.get_by_text(re.compile(r"^tiny · 60 patients")).first.wait_for()
            expect(sidebar(alice).get_by_text("Logged in as Alice Doe")).to_have_count(1)
            alice.screenshot(path=str(artifacts / "login-alice.png"))

            # Bob: an empty workspace; neither a deep link nor a guessed name opens Alice's cohort.
            log_in(bob, url, "bob")
            assert_page_readable(bob)
            expect(sidebar(bob).locator('input[aria-label="Cohort"]')).to_have_count(0)
            bob.get_by_text("The workspace holds no cohort yet").wait_for()
            for link in ("tiny", f"{user_id(issuer, 'alice')}/tiny"):
                bob.goto(f"{url}/?cohort={link}")
                bob.wait_for_selector(IDLE)
                settle(bob)
                sidebar(bob).get_by_text("in your workspace or shared with you").wait_for()
                expect(bob.get_by_text(re.compile(r"^tiny · 60 patients"))).to_have_count(0)
                expect(sidebar(bob).locator('input[aria-label="Cohort"]')).to_have_count(0)
            bob.screenshot(path=str(artifacts / "login-bob-refused.png"))

            # Alice shares "tiny" read-only with Bob's address.
            sidebar(alice).get_by_text("Share a cohort").click()
            sidebar(alice).locator('input[aria-label="Colleague\'s e-mail"]').fill("bob@hospital.example")
            sidebar(alice).get_by_role("button", name="Share read-only").click()
            sidebar(alice).get_by_text("is shared read-only with bob@hospital.example").wait_for()
            settle(alice)

            # Bob now sees it, read-only, and the deep link opens it.
            bob.goto(f"{url}/?cohort=tiny")
            bob.wait_for_selector(IDLE)
            settle(bob)
            assert_page_readable(bob)
            expect(sidebar(bob).locator('input[aria-label="Cohort"]')).to_have_value("tiny (shared by Alice Doe, read-only)")
            bob.get_by_text(re.compile(r"^tiny · 60 patients")).first.wait_for()
            expect(sidebar(bob).get_by_text("Shared with you read-only", exact=False)).to_have_count(1)
            bob.screenshot(path=str(artifacts / "login-bob-shared.png"))
            alice_context.close()
            bob_context.close()

            # XSRF protection is on: an upload without the session's token is refused.
            request = urllib.request.Request(f"{url}/_stcore/upload_file/session/file", data=b"x", method="PUT")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 403

        # Nothing was written for Bob outside his own folder, and Alice's workspace holds only her cohort.
        assert sorted(p.name for p in (root / "users").iterdir()) == sorted([user_id(issuer, "alice"), user_id(issuer, "bob")])
        assert Workspace(root / "users" / user_id(issuer, "bob")).names() == []
        # The server's log carries no patient identifier (and no e-mail address).
        text = log.read_text()
        assert not [pid for pid in patient_ids if pid in text], text[-2000:]
        assert "@hospital.example" not in text


def test_a_deep_link_opened_before_logging_in_opens_its_page_and_cohort_after_it(browser, browser_context_args, app_workspace_template, tmp_path):
    from dataclasses import replace

    root = tmp_path / "root"
    with oidc_provider(USERS) as issuer:
        alice_folder = Accounts(root).workspace_path(user_id(issuer, "alice"))
        shutil.copytree(app_workspace_template, alice_folder)
        workspace = Workspace(alice_folder)
        workspace.save(replace(workspace.load("tiny"), name="second"))  # not the cohort she opened last
        with login_server(root, write_secrets(tmp_path, issuer), tmp_path / "streamlit.log") as url:
            # First on the fresh server (the page file runs first and hands over to app.py), then
            # in a new browser once the app's navigation is known to the server.
            for path, cohort, heading in (("prediction", "second", "Treatment-response prediction"), ("any_outcome", "tiny", "Any outcome")):
                context = browser.new_context(**browser_context_args)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.route("**/cdn.jsdelivr.net/**", lambda route: route.abort())
                page.goto(f"{url}/{path}?cohort={cohort}")
                page.get_by_role("button", name="Log in").click()
                page.get_by_placeholder("sub").fill("alice")
                page.get_by_role("button", name="Authorize").click()
                page.wait_for_url(f"{url}/{path}")
                sidebar(page).get_by_text("Logged in as").wait_for()
                page.wait_for_selector(IDLE)
                settle(page)
                assert_page_readable(page)
                expect(sidebar(page).locator('input[aria-label="Cohort"]')).to_have_value(cohort)
                page.get_by_role("heading", name=heading).first.wait_for()
                # The link is followed once: the app's root opened later stays there.
                page.goto(url)
                page.get_by_role("heading", name="Cohort explorer").wait_for()
                settle(page)
                assert page.url.rstrip("/") == url
                context.close()
