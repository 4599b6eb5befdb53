"""The plugin API. Every hook here is documented for plugin authors: these docstrings are
the manual (a test fails when a hook has none).

A plugin is a module (or object) with functions decorated by `engine.hookimpl`, made
known through the `tessera` entry-point group of its distribution::

    # pyproject.toml of your distribution
    [project.entry-points.tessera]
    my_ldap = "my_ldap_plugin"

Hooks are synchronous and *register types*; the objects they register do the async work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from engine.events import Event
    from engine.plugins import HasherRegistry, MailerRegistry, ProviderRegistry

PROJECT = "tessera"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tessera_register_providers(registry: ProviderRegistry) -> None:
    """Add identity-provider types that realm files can then use under `providers:`.

    Call ``registry.add(type_name, SettingsModel, ProviderClass)``:

    - ``type_name`` is what a realm writes as ``type:`` (``"google"``, ``"ldap"``);
    - ``SettingsModel`` subclasses ``engine.ProviderSettings`` and declares
      ``type: Literal["<type_name>"]`` plus its own settings (unknown keys are errors;
      use ``SecretStr`` for secrets, written in YAML as ``${ENV}`` references);
    - ``ProviderClass(settings, context)`` builds the provider for one realm. It is a
      ``engine.CredentialsProvider`` (verifies what the user typed: ``login``) or a
      ``engine.RedirectProvider`` (``login_url`` and ``handle_callback``), and returns
      an ``engine.ExternalIdentity``. A credentials provider that keeps the realm's own
      passwords also implements ``engine.PasswordCapability`` (below).

    ``context`` is an ``engine.ProviderContext``: the realm's name, issuer and display
    name, and the only engine services a provider may call: ``context.http`` (the shared
    ``aiohttp.ClientSession`` for upstreams), ``context.now()`` (the engine's clock, which
    tests control), ``context.accounts`` (the realm users API) and ``context.passwords``
    (hashing in the engine's bounded worker threads).
    """


@hookspec
def tessera_register_hashers(registry: HasherRegistry) -> None:
    """Add password hashers: ``registry.add(hasher)``.

    A hasher has ``scheme`` (the PHC prefix it recognises, e.g. ``"argon2id"``),
    ``identifies(stored_hash) -> bool``, ``verify(stored_hash, password) -> bool`` and,
    if it can produce hashes, ``hash(password) -> str``. Only the default hasher
    (argon2id) hashes; any other is verify-only, so an imported account is re-hashed
    with argon2id at its next successful login. These methods are blocking: the engine
    calls them in a worker thread.
    """


@hookspec
def tessera_register_mailers(registry: MailerRegistry) -> None:
    """Add mail senders: ``registry.add(type_name, factory)``.

    ``idp.yaml`` picks one with ``mail: {type: <type_name>}`` (the engine's own are
    ``outbox``, the embedded default, and ``smtp``). ``factory(settings, base_dir)``
    receives the server's ``engine.config.models.MailSettings`` (a plugin sender reads its
    own keys from ``settings.options`` and should validate them with its own model) and
    the directory of ``idp.yaml``, and returns an object with one coroutine method,
    ``async send(message: email.message.EmailMessage) -> None``, which delivers a fully
    built message (From, To, Subject, text and HTML parts) or raises. The engine calls it
    off the request path and logs failures; it must not block the event loop.
    """


@hookspec
def tessera_event(event: Event) -> None:
    """Receive every audit event (login, logout, login failure, lockout, token issued,
    refresh reuse detected, revocation, identity linked, key rotation, config reload).

    ``event`` is an ``engine.Event`` with ``realm``, ``type``, ``at``, ``user_id``,
    ``client_id``, ``ip`` and ``data``; it never carries a secret or a token value.
    Implementations must return quickly and must not raise: ship the event to a queue
    and do slow work elsewhere.
    """


@runtime_checkable
class PasswordCapability(Protocol):
    """What a provider offers when it holds the realm's own passwords; the engine's account
    pages (``/register``, ``/forgot-password``, ``/reset-password``, the set-a-password
    steps of ``idp users``) use the realm's first provider that has it, and the sign-in and
    token rules read its ``require_verified_email``. The in-tree ``password`` provider is
    one; a plugin provider that keeps local passwords implements the same members (no
    base class needed: the engine checks ``isinstance(provider, engine.PasswordCapability)``).

    - ``registration``: whether people may create accounts at ``/register``;
    - ``require_verified_email``: no authorization code and no refresh token for a user
      signed in through this provider until their email address is verified;
    - ``min_length`` / ``max_length``: the password length bounds the forms show (and
      sign-in refuses longer passwords before hashing anything);
    - ``hash_password(password) -> str``, a coroutine: a fresh hash to store (hashed off
      the event loop, e.g. with ``context.passwords.hash``);
    - ``password_problem(password, *, email=None, name=None) -> str | None``: why the
      realm's policy refuses a new password, as one sentence for the user, or None.
    """

    @property
    def registration(self) -> bool: ...

    @property
    def require_verified_email(self) -> bool: ...

    @property
    def min_length(self) -> int: ...

    @property
    def max_length(self) -> int: ...

    async def hash_password(self, password: str) -> str: ...

    def password_problem(self, password: str, *, email: str | None = None, name: str | None = None) -> str | None: ...
