"""The layer contract in pyproject.toml (see ARCHITECTURE.md) holds, and each of its
rules really bites: a copy of the tree with one forbidden import breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("service", "indexing", "retrieval", "liveness")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=300
    )


def test_the_contract_holds() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("service/domain/history.py", "import service.http.deps", "service layers"),
        ("service/db/session.py", "import service.domain.audit", "service layers"),
        ("service/core/problems.py", "import fastapi", "only the HTTP layer"),
        ("retrieval/templates.py", "import service.core.settings", "never import it"),
        ("retrieval/base.py", "import indexing.types", "retrieval is below indexing"),
        ("indexing/registry.py", "import indexing.pipeline", "no import cycle"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout


def test_modules_stay_small() -> None:
    """A module past ~400 lines is two modules; split it where its parts separate."""
    too_long = {
        str(path.relative_to(REPO)): n
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not too_long, too_long
