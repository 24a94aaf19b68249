"""Run folders (and, later, model packages and the registry)."""
