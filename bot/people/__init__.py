"""People: Slack users' names and workspace roles, cached from ``users.info``."""
