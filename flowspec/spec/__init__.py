"""Spec models, format upgrades and ``parse_spec`` (imported from the submodules)."""
