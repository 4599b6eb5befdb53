"""Seed security must: refresh tokens only once the email is verified, unless both the
realm (`refresh_requires_verified_email`) and its providers allow it; `offline_access`
required where the realm says so."""

from __future__ import annotations

import copy
import dataclasses

from engine.oauth.grants.common import refresh_allowed


def realm_variant(realm, *, realm_requires: bool, provider_requires: bool, offline: bool = False):
    config = realm.config.model_copy(update={"refresh_requires_verified_email": realm_requires,
                                             "refresh_requires_offline_access": offline})
    providers = {}
    for pid, provider in realm.providers.items():
        providers[pid] = variant_provider = copy.copy(provider)
        variant_provider.settings = provider.settings.model_copy(update={"require_verified_email": provider_requires})
    variant = dataclasses.replace(realm, config=config)
    variant.__dict__["providers"] = providers  # the cached property, pre-filled
    return variant


async def test_unverified_user_gets_refresh_only_when_nobody_requires_verification(idp):
    user = await idp.add_user(verified=False)
    realm, client = idp.realm(), idp.realm().clients["spa"]
    scopes = {"openid", "offline_access"}
    for realm_requires, provider_requires, allowed in ((True, False, False), (False, True, False),
                                                       (False, False, True)):
        variant = realm_variant(realm, realm_requires=realm_requires, provider_requires=provider_requires)
        assert refresh_allowed(variant, client, user, scopes) is allowed


async def test_offline_access_required_when_the_realm_says_so(idp):
    user = await idp.add_user()
    realm = realm_variant(idp.realm(), realm_requires=True, provider_requires=True, offline=True)
    client = realm.clients["spa"]
    assert not refresh_allowed(realm, client, user, {"openid"})
    assert refresh_allowed(realm, client, user, {"openid", "offline_access"})
    assert not refresh_allowed(realm, realm.clients["worker"], user, {"openid", "offline_access"})
