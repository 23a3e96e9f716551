"""The app with logins on (AppTest, st.user seeded): login screen, private workspaces, sharing,
deep links, and caches keyed by the user. Without ``[auth]`` the app is single-user (the other page
tests run it that way, unchanged)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store.users import Accounts, User
from core.store.workspace import DEFAULT_WORKSPACE_ENV
from tests.app_support import APP, no_exception

ISSUER = "http://127.0.0.1:9400"
ALICE = User(subject="alice", issuer=ISSUER, email="alice@hospital.example", name="Alice Doe")
BOB = User(subject="bob", issuer=ISSUER, email="bob@hospital.example", name="Bob Roe")
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-secret-of-at-least-thirty-two-characters",
    "client_id": "neuropredict",
    "client_secret": "test-client-secret",
    "server_metadata_url": f"{ISSUER}/.well-known/openid-configuration",
}
SHARED_LABEL = "tiny (shared by Alice Doe, read-only)"


def claims(user: User) -> dict:
    return {"is_logged_in": True, "sub": user.subject, "iss": user.issuer, "email": user.email, "name": user.name}


@pytest.fixture
def root(app_workspace_template, tmp_path, monkeypatch, fresh_streamlit):
    """A workspaces root where Alice holds the cohort "tiny" and nobody else holds anything."""
    root = tmp_path / "root"
    shutil.copytree(app_workspace_template, Accounts(root).workspace_path(ALICE))
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(root))
    return root


def run_as(user: User | None, *, link: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = claims(user) if user is not None else {"is_logged_in": False}
    if link is not None:
        at.query_params["cohort"] = link
    at.run()
    no_exception(at)
    return at


def cohort_options(at) -> list[str]:
    boxes = [s for s in at.sidebar.selectbox if s.label == "Cohort"]
    return boxes[0].options if boxes else []


def titles(at) -> list[str]:
    return [t.value for t in at.title]


def test_logged_out_sees_only_the_login_screen(root):
    at = run_as(None)
    assert [b.label for b in at.button] == ["Log in"]
    assert titles(at) == ["NeuroPredict"] and cohort_options(at) == []
    assert len(at.sidebar) == 0  # no navigation, no workspace path, no cohort
    assert sorted(p.name for p in (root / "users").iterdir()) == [ALICE.id]  # nothing was opened or made for a visitor


def test_named_providers_each_get_a_button(root):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets["auth"] = {**{k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}, "keycloak": {"client_id": "x"}, "azure": {"client_id": "y"}}
    at.user = {"is_logged_in": False}
    at.run()
    assert sorted(b.label for b in at.button) == ["Log in with azure", "Log in with keycloak"]


def test_each_user_sees_only_their_own_workspace(root):
    alice = run_as(ALICE)
    assert cohort_options(alice) == ["tiny"] and "Cohort explorer" in titles(alice)
    assert any(c.value == "Logged in as **Alice Doe**" for c in alice.sidebar.caption)
    assert not any("Workspace:" in c.value for c in alice.sidebar.caption)  # the server's paths are not shown to users

    bob = run_as(BOB)
    assert cohort_options(bob) == []
    assert any("holds no cohort yet" in i.value for i in bob.info)
    assert (root / "users" / BOB.id / "catalogue.duckdb").exists()  # Bob's own workspace, named by his id
    # A guessed deep link is refused with the same words as a name nobody has.
    guessed, unknown = run_as(BOB, link="tiny"), run_as(BOB, link="nosuchcohort")
    assert [e.value for e in guessed.error] == ["[cohort] no cohort named 'tiny' in your workspace or shared with you."]
    assert [e.value.replace("nosuchcohort", "tiny") for e in unknown.error] == [e.value for e in guessed.error]
    assert cohort_options(guessed) == [] and not any(c.value.startswith("**tiny**") for c in guessed.caption)
    # Naming the owner's folder is no way in either.
    assert [e.value for e in run_as(BOB, link=f"{ALICE.id}/tiny").error] != []


def test_shared_read_only_after_alice_shares(root):
    alice = run_as(ALICE)
    alice.sidebar.text_input[0].input("Bob@Hospital.example")
    (submit,) = [b for b in alice.sidebar.button if b.label == "Share read-only"]
    submit.click().run()
    no_exception(alice)
    assert any("shared read-only with bob@hospital.example" in s.value for s in alice.sidebar.success)
    assert any(c.value == "tiny → bob@hospital.example" for c in alice.sidebar.caption)

    bob = run_as(BOB)
    assert cohort_options(bob) == [SHARED_LABEL]  # AppTest lists the options as shown
    assert any(c.value.startswith("**tiny** · 60 patients") for c in bob.caption)
    assert any("read-only" in c.value for c in bob.sidebar.caption)
    # Bob cannot share what is not his: his share form lists only his own cohorts (none).
    assert [s.options for s in bob.sidebar.selectbox if s.label == "Your cohort"] == [[]]
    # The deep link now opens it.
    linked = run_as(BOB, link="tiny")
    assert len(linked.error) == 0
    assert linked.sidebar.selectbox[0].value == f"{ALICE.id}/tiny"

    # Alice stops sharing: gone from Bob's list at once.
    alice.run()
    (unshare,) = [b for b in alice.sidebar.button if b.help and b.help.startswith("Stop sharing tiny")]
    unshare.click().run()
    no_exception(alice)
    assert cohort_options(run_as(BOB)) == []


def _scoped_cache_script():
    import uuid

    import streamlit as st

    from components import state

    @state.user_cache_data(max_entries=4)
    def token(digest: str, _big=None) -> str:
        return f"{digest}:{uuid.uuid4()}"

    st.markdown(token("same-digest", _big=object()))
    st.caption(state.cache_scope())
    st.caption(state.owner_id())


def _run_script(user: User | None, secrets: bool = True) -> AppTest:
    at = AppTest.from_function(_scoped_cache_script, default_timeout=60)
    if secrets:
        at.secrets["auth"] = AUTH
    if user is not None:
        at.user = claims(user)
    return at.run()


def test_caches_are_keyed_by_the_users_workspace(root):
    alice_first, bob, alice_again = _run_script(ALICE), _run_script(BOB), _run_script(ALICE)
    for at in (alice_first, bob, alice_again):
        no_exception(at)
    # Equal arguments, another user: computed again, never served from Alice's entry.
    assert bob.markdown[0].value != alice_first.markdown[0].value
    assert alice_again.markdown[0].value == alice_first.markdown[0].value  # and the cache still works per user
    assert alice_first.caption[0].value == str(root / "users" / ALICE.id) and bob.caption[0].value == str(root / "users" / BOB.id)
    assert (alice_first.caption[1].value, bob.caption[1].value) == (ALICE.id, BOB.id)


def test_without_auth_the_owner_is_local(root):
    at = _run_script(None, secrets=False)
    no_exception(at)
    assert at.caption[0].value == str(root) and at.caption[1].value == "local"


def test_every_cache_of_user_data_is_keyed_by_the_user():
    """A static audit: panels and pages cache user data only through state.user_cache_*; the plain
    st.cache_* left are on shared assets (the cortex mesh, coil maps, the surrogate's report) or
    keyed by a workspace path (state.py, the job runner)."""
    root = Path(__file__).resolve().parent.parent
    plain = {}
    for path in [*root.glob("components/**/*.py"), *root.glob("pages/*.py")]:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("@st.cache_data", "@st.cache_resource")):
                name = next(ln for ln in lines[i + 1 :] if ln.lstrip().startswith("def ")).split("def ")[1].split("(")[0]
                plain[f"{path.relative_to(root)}:{name}"] = line.strip()
    assert sorted(plain) == [
        "components/panels/jobs.py:_runner_at",  # keyed by the workspace path
        "components/panels/tms.py:compute_map",
        "components/panels/tms.py:cortex",
        "components/panels/tms.py:surrogate_report",
        "components/state.py:_accounts_at",
        "components/state.py:_load_cohort",
        "components/state.py:_load_saved",
        "components/state.py:_workspace_at",
    ], plain


def test_xsrf_protection_stays_on():
    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config.get("server", {}).get("enableXsrfProtection", True) is True
    assert config.get("server", {}).get("enableCORS", True) is True
    from streamlit import config as st_config

    assert st_config.get_option("server.enableXsrfProtection") is True


def test_the_example_secrets_parse_and_offer_each_provider(root):
    example = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "secrets.example.toml").read_text())
    assert example["auth"]["redirect_uri"].endswith("/oauth2callback")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets["auth"] = example["auth"]
    at.user = {"is_logged_in": False}
    at.run()
    no_exception(at)
    assert [b.label for b in at.button] == ["Log in with keycloak", "Log in with microsoft"]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_shared_cohort_is_read_never_written(root):
    Accounts(root).share(ALICE, "tiny", BOB.email)
    alice_folder = Accounts(root).workspace_path(ALICE)
    before = _snapshot(alice_folder)
    bob = run_as(BOB, link="tiny")  # opened by its link, so remembered as the cohort last opened
    assert bob.sidebar.selectbox[0].value == f"{ALICE.id}/tiny"
    for page in ("pages/prediction.py", "pages/ablation.py", "pages/cohort.py"):
        bob.switch_page(page).run()
        no_exception(bob)
        assert any(c.value.startswith("**tiny** · 60 patients") for c in bob.caption), page
    assert _snapshot(alice_folder) == before  # not a byte of Alice's workspace changed
    # What Bob's session remembers (the cohort last opened) is in his own workspace.
    from core.store.workspace import Workspace

    assert Workspace(root / "users" / BOB.id).get_setting("last_cohort") == f"{ALICE.id}/tiny"
    assert Workspace(alice_folder).get_setting("last_cohort") is None


def test_a_login_without_a_subject_is_refused_with_a_message(root):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "iss": ISSUER, "email": "nobody@hospital.example"}
    at.run()
    no_exception(at)
    assert [e.value for e in at.error] == ["[sub] the identity provider sent no subject ('sub' claim); cannot tell who logged in."]
    assert cohort_options(at) == [] and "Cohort explorer" not in titles(at)
