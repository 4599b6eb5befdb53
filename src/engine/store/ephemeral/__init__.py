"""Ephemeral-tier backends: in-process memory (embedded) and Redis (production)."""
