"""The summary capability."""
