"""IB Preflight: the pre-market checklist bot for Interactive Brokers trading desks."""
