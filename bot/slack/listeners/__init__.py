"""Thin handlers by kind; each module exposes register(app)."""
