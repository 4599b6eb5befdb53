"""Versioned plain-SQL migrations, one directory per dialect (`sqlite/`, `postgres/`)."""
