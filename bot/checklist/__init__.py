"""The checklist capability."""
