"""The ``faceprint`` command tree, for tests that check what documents and deployment
files say against it."""

from __future__ import annotations

from typing import Any

import typer.main
from typer.core import TyperGroup


def root() -> Any:  # the Click group Typer builds
    from service.cli.main import app

    return typer.main.get_command(app)


def resolve(words: list[str], where: str = "README") -> tuple[list[str], Any]:
    """The command path the words after ``faceprint`` name, and the command; words
    after a leaf command are its arguments. A group followed by a word that is not one
    of its commands is an error."""
    node, path = root(), []
    for word in words:
        if not isinstance(node, TyperGroup) or word.startswith("-"):
            break
        sub = node.commands.get(word)
        assert sub is not None, f"{where}: 'faceprint {' '.join([*path, word])}' is no command"
        node, path = sub, [*path, word]
    return path, node


def options_of(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def leaf_commands() -> list[str]:
    found: list[str] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, TyperGroup):
            for name, sub in node.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
        else:
            found.append(" ".join(path))

    walk(root(), [])
    return found
