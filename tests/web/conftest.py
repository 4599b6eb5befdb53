from tests.oauth.conftest import idp  # noqa: F401 - the same IdP under test
