"""`idp users ...`: an administrator's everyday commands (issue 18 item 9).

    idp users add --realm R --email E [--name N] [--unverified]   (password from a prompt or stdin)
    idp users list --realm R [--json]
    idp users show|disable|enable|delete|reset-password|sessions|revoke-sessions|reset-mfa --realm R --user ID-or-EMAIL
      [--json]
    idp users prune --realm R

Disabling, deleting and revoking end the user's sessions, access tokens and refresh
tokens at once, on every instance (engine.accounts.admin).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.cli_support import load_or_exit, realm_or_exit, with_stores
from engine.plugins import Plugins

if TYPE_CHECKING:
    from engine.services import Services

ACTIONS = {
    "add": "create a user with a password (--email, --name, --unverified)",
    "list": "list the realm's users",
    "show": "show one user (--user)",
    "disable": "disable a user and end their sessions and tokens (--user)",
    "enable": "enable a disabled user (--user)",
    "delete": "delete a user and everything stored under them (--user)",
    "reset-password": "print a single-use password-reset link for the user (--user)",
    "sessions": "list the user's browser sessions (--user)",
    "revoke-sessions": "end the user's sessions, access tokens and refresh tokens (--user)",
    "prune": "remove self-registered accounts never verified in time",
    "reset-mfa": "remove every second factor of the user: TOTP, recovery codes, passkeys (--user)",
}
ON_A_USER = {"show", "disable", "enable", "delete", "reset-password", "sessions", "revoke-sessions", "reset-mfa"}


def add_users_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    users = command("users", cmd_users, "manage users: " + ", ".join(ACTIONS))
    users.add_argument("action", choices=list(ACTIONS),
                       help="; ".join(f"{name}: {what}" for name, what in ACTIONS.items()))
    users.add_argument("--realm", required=True, help="the realm of the user(s)")
    users.add_argument("--user", help="the user: an id (usr_...) or an email address")
    users.add_argument("--email", help="the new user's email address, their sign-in name (add)")
    users.add_argument("--name", help="the new user's full name, the `name` claim (add)")
    users.add_argument("--unverified", action="store_true", help="leave the new user's email unverified (add)")
    users.add_argument("--json", action="store_true", help="print JSON (one object per line for list)")


def _read_password(prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        if getpass.getpass("Repeat password: ") != first:
            print("passwords do not match", file=sys.stderr)
            raise SystemExit(2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    plugins = Plugins()
    config = load_or_exit(args.config, plugins)
    realm_or_exit(config, args.realm)
    if args.action == "add":
        return _add(args, config, plugins)
    if args.action == "prune":
        return _prune(args, config, plugins)
    if args.action == "list":
        return with_stores(config, plugins, lambda services: _list(args, services))
    if not args.user:
        print(f"idp users {args.action}: --user (an id or an email address) is required", file=sys.stderr)
        return 2
    return with_stores(config, plugins, lambda services: _on_a_user(args, services))


def _add(args: argparse.Namespace, config: Any, plugins: Plugins) -> int:
    from engine.accounts.emails import InvalidEmail
    from engine.accounts.users import create_user
    from engine.store.protocols import AlreadyExists

    if not args.email:
        print("idp users add: --email is required", file=sys.stderr)
        return 2
    password = _read_password()
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 2

    async def work(services: Services) -> int:
        realm = services.runtime.realms[args.realm]
        profile = {"name": args.name} if args.name else {}
        try:
            user = await create_user(services, realm, email=args.email, password=password,
                                     email_verified=not args.unverified, profile=profile)
        except AlreadyExists:
            print(f"{args.email} already has an account in realm {args.realm}", file=sys.stderr)
            return 1
        except InvalidEmail as exc:  # the same rule as the forms (engine.accounts.emails)
            print(f"{args.email!r} is not an email address Tessera accepts: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        await services.audit(realm.name, "user_created", user_id=user.id, via="admin")
        print(f"created {user.id} <{user.email}> in realm {args.realm}")
        return 0

    return with_stores(config, plugins, work)


def _prune(args: argparse.Namespace, config: Any, plugins: Plugins) -> int:
    """Remove the realm's self-registered accounts never verified within
    `lifetimes.unverified_account` (engine.accounts.pruning)."""
    from engine.accounts.pruning import prune_unverified

    async def work(services: Services) -> int:
        removed = await prune_unverified(services, services.runtime.realms[args.realm])
        print(f"removed {len(removed)} unverified self-registered account(s) from realm {args.realm}")
        return 0

    return with_stores(config, plugins, work)


def _line(user: dict[str, Any]) -> str:
    flags = [flag for flag, on in (("unverified", not user["email_verified"]), ("disabled", user["disabled"]),
                                   ("self-registered", user["self_registered"])) if on]
    return (f"{user['id']}\t{user['email'] or '-'}\t{user['name'] or '-'}\t{user['created_at'][:16]}"
            f"\t{','.join(flags) or 'ok'}")


async def _list(args: argparse.Namespace, services: Services) -> int:
    from engine.accounts.admin import describe

    after = None
    while True:
        page = await services.durable.list_users(args.realm, after=after, limit=500)
        for user in page:
            described = describe(user)
            print(json.dumps(described) if args.json else _line(described))
        if len(page) < 500:
            return 0
        after = page[-1].id


async def _on_a_user(args: argparse.Namespace, services: Services) -> int:
    from engine.accounts import admin, mfa

    realm = services.runtime.realms[args.realm]
    user = await admin.find_user(services, realm, args.user)
    if user is None:
        print(f"no user {args.user!r} in realm {args.realm}", file=sys.stderr)
        return 1
    action = args.action
    result: Any
    if action == "show":
        result = admin.describe(user)
        result["identities"] = [{"provider": link.provider_id, "issuer": link.issuer, "subject": link.subject}
                                for link in await services.durable.list_identities(realm.name, user.id)]
        result["has_password"] = await services.accounts.password_hash(realm.name, user.id) is not None
        result["second_factors"] = await mfa.describe_factors(services, realm, user.id)
    elif action == "reset-mfa":
        result = {"user": user.id, "removed": await mfa.reset(services, realm, user.id)}
    elif action in ("disable", "enable"):
        result = admin.describe(await admin.set_disabled(services, realm, user, action == "disable"))
    elif action == "delete":
        await admin.delete(services, realm, user)
        result = {"deleted": user.id}
    elif action == "reset-password":
        result = {"link": await admin.reset_link(services, realm, user),
                  "expires_in_seconds": int(realm.config.lifetimes.password_reset.total_seconds())}
    elif action == "sessions":
        result = await admin.sessions(services, realm, user)
    else:  # revoke-sessions
        result = {"user": user.id, "sessions_ended": True,
                  "refresh_families_revoked": await admin.revoke_sessions(services, realm, user)}
    if args.json:
        print(json.dumps(result))
    elif isinstance(result, list):
        for entry in result:
            print("\t".join(str(v) for v in entry.values()))
        if not result:
            print("no live sessions")
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
