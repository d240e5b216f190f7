"""Sandbox budget requests: validation, routing, decisions, grants. Platform-neutral."""
