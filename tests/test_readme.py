"""README drift: every ``faceprint …`` command it shows exists (its ``--help`` works),
every command of the CLI and every setting is in it, every ``FACEPRINT_*`` variable it
names is a setting, and it speaks of the product, not of the work that built it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MENTION = re.compile(r"(?<![\w.-])faceprint((?: [a-z][a-z0-9-]*)+)")
VARIABLE = re.compile(r"\bFACEPRINT_[A-Z0-9_]+\b")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _root():  # noqa: ANN202 - the Click group Typer builds
    from service.cli.main import app

    return typer.main.get_command(app)


def resolve(words: list[str]) -> list[str]:
    """The command path that the words after ``faceprint`` name; words after a leaf
    command are its arguments. A group followed by a word that is not one of its
    commands is an error."""
    node, path = _root(), []
    for word in words:
        if not isinstance(node, TyperGroup):
            break
        sub = node.commands.get(word)
        assert sub is not None, f"README: 'faceprint {' '.join(path + [word])}' is no command"
        node, path = sub, path + [word]
    return path


def leaf_commands() -> list[str]:
    found: list[str] = []

    def walk(node, path: list[str]) -> None:  # noqa: ANN001
        if isinstance(node, TyperGroup):
            for name, sub in node.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
        else:
            found.append(" ".join(path))

    walk(_root(), [])
    return found


def test_every_command_shown_exists_and_has_help() -> None:
    from service.cli.main import app

    paths = {tuple(resolve(m.group(1).split())) for m in MENTION.finditer(README)}
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
