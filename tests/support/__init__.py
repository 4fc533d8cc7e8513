"""Test helpers: the fake Slack and pager, the HTTP harness, factories and shared fixtures."""
