"""The desks capability."""
