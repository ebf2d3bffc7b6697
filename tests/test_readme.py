"""README drift: every ``faceprint …`` command it shows exists (its ``--help`` works),
every command of the CLI and every setting is in it, every ``FACEPRINT_*`` variable it
names is a setting, and it speaks of the product, not of the work that built it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli_tree import leaf_commands, resolve

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MENTION = re.compile(r"(?<![\w.-])faceprint((?: [a-z][a-z0-9-]*)+)")
VARIABLE = re.compile(r"\bFACEPRINT_[A-Z0-9_]+\b")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_command_shown_exists_and_has_help() -> None:
    from service.cli.main import app

    paths = {tuple(resolve(m.group(1).split())[0]) for m in MENTION.finditer(README)}
    assert len(paths) > 20  # the quick start and the command table were read
    for path in sorted(paths):
        done = CliRunner().invoke(app, [*path, "--help"])
        assert done.exit_code == 0, (path, done.output)


def test_every_command_is_in_the_command_table() -> None:
    table = section("Command line")
    missing = [c for c in leaf_commands() if f"`faceprint {c}" not in table and
               f", `faceprint {c}" not in table]  # fmt: skip
    assert not missing, f"commands missing from README's Command line: {missing}"


def test_variables_and_settings_agree() -> None:
    from service.core.settings import Settings

    settings = {f"FACEPRINT_{name.upper()}" for name in Settings.model_fields}
    named = set(VARIABLE.findall(README))
    assert not named - settings, (
        f"README names variables the service does not read: {named - settings}"
    )
    table = section("Configuration")
    missing = sorted(v for v in settings if f"`{v}`" not in table)
    assert not missing, f"settings missing from README's Configuration table: {missing}"


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.name)
def test_user_docs_speak_of_the_product(doc: Path) -> None:
    text = doc.read_text()
    for pattern in (r"issue ?#\d", r"\bthe issue\b", r"issue's", r"issue cone", r"#\d+\b(?! *\|)"):
        hits = re.findall(pattern, text, flags=re.IGNORECASE)
        assert not hits, (doc.name, pattern, hits)
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        if not link.startswith(("http://", "https://")):
            assert (doc.parent / link).exists(), (doc.name, link)


def test_the_python_version_is_stated() -> None:
    import tomllib

    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11" and "Python 3.11 or newer" in section("Quick start")
