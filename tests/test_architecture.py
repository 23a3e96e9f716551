"""House rules that code review alone would let slip."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contract_keeps_core_free_of_streamlit_and_components():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_core_never_mentions_pages():
    offenders = [p.name for p in (ROOT / "core").glob("*.py") if re.search(r"^\s*(from|import) pages", p.read_text(), re.M)]
    assert offenders == []


def test_pages_stay_thin():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "pages").glob("*.py")}
    assert sizes and max(sizes.values()) <= 200, sizes
