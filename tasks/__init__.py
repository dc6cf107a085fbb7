"""Thin Luigi wrappers. Nothing imports `tasks`."""
