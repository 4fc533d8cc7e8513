"""Domain logic, one module per noun. Services never import slack_sdk."""


class ServiceError(ValueError):
    """A rule was broken; the message is a sentence fit to show a user."""
