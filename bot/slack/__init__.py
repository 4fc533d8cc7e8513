"""The Slack edge: Bolt app, listeners, Block Kit views."""
