"""Tokens: JWT minting and verifying, signing keys and rotation, refresh families."""
