"""A local OpenID Connect provider for the login tests, and `streamlit run app.py` with logins on.

The provider is ``oidc-provider-mock`` (test-only dependency) in a thread of the test process: any
client id and secret are accepted, and its login form takes the subject ("sub") to log in as; the
other claims of each test user (e-mail, name) are registered up front. The app reads its ``[auth]``
settings from a secrets.toml written into the test's temporary folder (``--secrets.files``), so the
repository's .streamlit/ folder is never touched.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.browser_support import IDLE, streamlit_server

COOKIE_SECRET = "login-tests-cookie-secret-0123456789abcdef"


@contextlib.contextmanager
def oidc_provider(users: dict[str, dict]):
    """Yield the issuer URL of a mock provider that knows ``users`` (subject -> claims)."""
    import oidc_provider_mock

    claims = [oidc_provider_mock.User(sub=sub, claims=dict(c)) for sub, c in users.items()]
    with oidc_provider_mock.run_server_in_thread(user_claims=claims) as server:
        yield f"http://localhost:{server.server_port}"


def write_secrets(folder: Path, issuer: str) -> Path:
    """A secrets.toml with one provider: the mock at ``issuer``. ``{port}`` is filled in by Streamlit."""
    path = folder / "secrets.toml"
    path.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        'client_id = "neuropredict-tests"\n'
        'client_secret = "any-secret-will-do"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
    )
    return path


@contextlib.contextmanager
def login_server(root: Path, secrets: Path, log: Path):
    """Yield the base URL of `streamlit run app.py` with logins on (``secrets``) and ``root`` as the
    workspaces' root; its stdout and stderr go to ``log``. Ended with its children afterwards."""
    with streamlit_server(root, log, extra_args=("--secrets.files", str(secrets))) as url:
        yield url


def log_in(page, url: str, subject: str) -> None:
    """Open the app, press "Log in", type ``subject`` into the provider's form, and wait for the app."""
    # The provider's form links a stylesheet on a CDN; nothing outside this machine is reachable.
    page.route("**/cdn.jsdelivr.net/**", lambda route: route.abort())
    page.goto(url)
    page.get_by_role("button", name="Log in").click()
    page.get_by_placeholder("sub").fill(subject)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**")
    page.locator("[data-testid=stSidebar]").get_by_text("Logged in as").wait_for()
    page.wait_for_selector(IDLE)
