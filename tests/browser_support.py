"""What the browser tests share: Debian's Chromium for Playwright, a `streamlit run` server on a free
port, and waiting for the app to settle. Fixtures that configure pytest-playwright live in conftest.

Playwright cannot download its own browser here, so Debian's /usr/bin/chromium is launched through
``executable_path``. Without it the browser tests are skipped, except in CI (env var CI set), where
they fail. Screenshots go to tests/artifacts/ (git-ignored) for a person to look at.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
RUNNING = "[data-testid=stApp][data-test-script-state=running]"
TIMEOUT_MS = 120_000
expect.set_options(timeout=30_000)

# Every browser test module sets ``pytestmark = BROWSER_ONLY``: skipped without Chromium, except in CI.
BROWSER_ONLY = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
    ),
]


# --- server: `streamlit run app.py` on a free port ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workspace: Path, log: Path, extra_args: tuple = ()):
    """Yield the base URL of `streamlit run app.py` on ``workspace`` (with further ``extra_args``
    for streamlit); kill it and its children after."""
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
        *extra_args,
    ]  # fmt: skip
    env = {**os.environ, "NEUROPREDICT_WORKSPACE": str(workspace)}
    with open(log, "wb") as out:
        # A session of its own, so that teardown can end the server and every worker it started.
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode} before answering:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, sig)
            try:
                server.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


# --- waiting and checking --------------------------------------------------------------------------------------


def settle(page, started_within_ms=3_000):
    """Wait for the rerun an interaction triggers (if it starts in time) to finish."""
    with contextlib.suppress(Exception):
        page.wait_for_selector(RUNNING, timeout=started_within_ms)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def choose(page, label, option):
    """Pick ``option`` in the selectbox labelled ``label`` (a combobox in Streamlit >= 1.50)."""
    page.locator(f'input[aria-label="{label}"]').click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def assert_no_exception(page):
    shown = page.locator("[data-testid=stException]")
    assert shown.count() == 0, shown.all_inner_texts()
