"""House rules that code review alone would let slip: layers, pure views, thin pages, public APIs."""

import ast
import configparser
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
CORE_SUBPACKAGES = sorted(p.parent.name for p in (ROOT / "core").glob("*/__init__.py"))
CORE_MODULES = sorted(p.stem for p in (ROOT / "core").glob("*.py") if not p.stem.startswith("_"))


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def test_every_import_linter_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(CONFIG)], cwd=ROOT, capture_output=True, text=True)
    n_contracts = sum(1 for s in contracts().sections() if s.startswith("importlinter:contract:"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {n_contracts} kept, 0 broken." in result.stdout


def test_the_layers_contract_names_every_part_of_core():
    """A new subpackage or top-level module cannot escape the layers by being left out of them."""
    layers = contracts()["importlinter:contract:core-layers"]["layers"]
    named = set(re.findall(r"core\.(\w+)", layers))
    assert set(CORE_SUBPACKAGES + CORE_MODULES) - {"tms"} <= named
    assert named <= set(CORE_SUBPACKAGES + CORE_MODULES)


def test_core_never_mentions_pages_anywhere():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py") if re.search(r"^\s*(from|import) pages", p.read_text(), re.M)]
    assert offenders == []


@pytest.mark.parametrize("name", ["core", *(f"core.{s}" for s in CORE_SUBPACKAGES), "components", "components.views", "components.panels"])
def test_each_package_says_its_job_and_exports_what_it_lists(name):
    module = importlib.import_module(name)
    doc = (module.__doc__ or "").strip()
    assert doc, f"{name} has no docstring"
    if name.startswith("core.") and name != "core.tms" and name != "core.io":
        assert len(doc.splitlines()) <= 3, f"{name}'s docstring should say its job in one or two lines"
    if name.startswith("core"):
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n) and importlib.util.find_spec(f"{name}.{n}") is None]
        assert missing == []


def test_core_lists_its_subpackages_truthfully():
    import core

    assert sorted(core.__all__) == sorted(CORE_SUBPACKAGES + CORE_MODULES)


def test_no_private_names_are_imported_across_modules():
    offenders = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "components").rglob("*.py"), *(ROOT / "pages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("core", "components")):
                offenders += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_pages_stay_thin():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "pages").glob("*.py")}
    assert sizes and max(sizes.values()) <= 200, sizes
