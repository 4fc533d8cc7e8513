"""The escalation capability."""
