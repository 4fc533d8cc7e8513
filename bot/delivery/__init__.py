"""The delivery capability."""
