"""``faceprint users …``: people who log in with an email and a password.

There are no default credentials: the first admin is made here. The password is read
from a hidden prompt (asked twice) or, for scripts, from one line of standard input
with ``--password-stdin``; it is never an option (options land in shell history and
``ps``), never echoed and never logged.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from service.cli.common import warn_if_served_elsewhere
from service.core.logging import configure_logging
from service.core.principal import Role
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import sessions
from service.domain.auth import tokens, users
from service.domain.auth.passwords import Passwords

users_app = typer.Typer(
    help="Manage users who log in with email and password (POST /v1/auth/token).",
    no_args_is_help=True,
)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The login name; stored lower-cased.")],
    role: Annotated[Role, typer.Option(help="admin, operator or client.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from one line of standard input."),
    ] = False,
) -> None:
    """Create a user and print its id on stdout. The password (8 characters at least) is
    prompted for, hidden, unless --password-stdin is given."""
    password = _read_password(password_stdin)
    settings = get_settings()
    configure_logging("WARNING")
    try:
        warn_if_served_elsewhere()
        with sessions(settings) as (_, make_session), make_session() as session:
            user = users.create_user(
                session,
                passwords=Passwords(),
                email=email,
                password=password,
                role=role,
                actor=None,
            )
            session.commit()
    except Problem as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc
    if role is Role.client:
        typer.echo(
            "note: users carry no gallery grants, so a client user can reach no gallery; "
            "for client systems use `faceprint keys create --role client --gallery ID`",
            err=True,
        )
    sys.stdout.write(f"{user.id}\n")


def _set_disabled(email: str, disabled: bool) -> None:
    settings = get_settings()
    configure_logging("WARNING")
    try:
        warn_if_served_elsewhere()
        with sessions(settings) as (_, make_session), make_session() as session:
            user = users.set_disabled(session, email=email, disabled=disabled, actor=None)
            revoked = tokens.revoke_user_tokens(session, user.id) if disabled else 0
            session.commit()
    except Problem as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc
    state = f"disabled ({revoked} refresh tokens revoked)" if disabled else "enabled"
    typer.echo(f"{user.email}: {state}", err=True)


@users_app.command("disable")
def users_disable(email: Annotated[str, typer.Option(help="The user's email.")]) -> None:
    """Disable a user: logins, refreshes and already-issued access tokens stop working at
    once."""
    _set_disabled(email, True)


@users_app.command("enable")
def users_enable(email: Annotated[str, typer.Option(help="The user's email.")]) -> None:
    """Enable a disabled user again (they must log in anew)."""
    _set_disabled(email, False)
