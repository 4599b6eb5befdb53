"""Accounts: users, credentials, linking of external identities, browser sessions."""
