"""Token-endpoint grants, one module each; each declares its `grant_type` (RFC 6749 §4)."""
