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


# What a figure draws above its plot, and the toolbars drawn over it on hover: none may cover another.
_FIGURE_OVERLAPS_JS = """
() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  const meets = (a, b) => Math.min(a.r, b.r) - Math.max(a.l, b.l) > 1 && Math.min(a.b, b.b) - Math.max(a.t, b.t) > 1;
  const found = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    if (!plot.offsetParent) continue;  // hidden (another tab)
    const areas = [...plot.querySelectorAll('.draglayer .nsewdrag')].map(box);
    const plotTop = areas.length ? Math.min(...areas.map(a => a.t)) : Infinity;
    const items = [];
    const add = (name, el) => { const b = box(el); if (b.r - b.l > 0 && b.b - b.t > 0) items.push({name, b}); };
    plot.querySelectorAll('.g-gtitle text').forEach(el => add('title "' + el.textContent + '"', el));
    plot.querySelectorAll('.legend .bg').forEach(el => add('legend', el));
    plot.querySelectorAll('.annotation').forEach(el => { const b = box(el); if (b.b <= plotTop + 1) add('label "' + el.textContent + '"', el); });
    const bar = plot.querySelector('.modebar');
    if (bar) add('toolbar', bar);
    const container = plot.closest('[data-testid=stElementContainer], .stElementContainer');
    const toolbar = container && container.querySelector('[data-testid=stElementToolbar]');
    if (toolbar) add('element toolbar', toolbar);
    const name = (plot.querySelector('.g-gtitle text') || {}).textContent || (plot.closest('[class*=st-key-]')?.className.match(/st-key-\S+/) || [])[0] || 'untitled figure';
    for (let i = 0; i < items.length; i++)
      for (let j = i + 1; j < items.length; j++) {
        const pair = [items[i].name, items[j].name];
        if (pair.every(n => n.startsWith('label')) || pair.every(n => n.includes('toolbar'))) continue;
        if (meets(items[i].b, items[j].b)) found.push(`${name}: ${pair[0]} overlaps ${pair[1]}`);
      }
  }
  return found;
}
"""


def assert_figures_readable(page, every_tab: bool = False):
    """No figure's title, legend or top labels overlap each other or the toolbars shown on hover; with
    ``every_tab``, in every tab shown, each opened in turn and the selected ones opened again after."""
    overlaps = page.evaluate(_FIGURE_OVERLAPS_JS)
    if every_tab:
        tabs = page.locator("[data-testid=stTabs] [role=tab]").filter(visible=True)
        labels = [(tabs.nth(i).inner_text(), tabs.nth(i).get_attribute("aria-selected") == "true") for i in range(tabs.count())]
        for label, _ in labels + [(label, True) for label, selected in labels if selected]:
            tab = page.get_by_role("tab", name=label, exact=True).filter(visible=True).first
            if tab.get_attribute("aria-selected") != "true":
                tab.click()
                settle(page, started_within_ms=800)
                page.wait_for_timeout(400)  # Plotly lays out a figure when its tab shows it
                overlaps += [f"[tab {label}] {o}" for o in page.evaluate(_FIGURE_OVERLAPS_JS)]
    assert not overlaps, sorted(set(overlaps))


def assert_page_readable(page, every_tab: bool = False):
    """No exception shown and no overlapping figure labels (in every tab, with ``every_tab``)."""
    assert_no_exception(page)
    assert_figures_readable(page, every_tab=every_tab)
