"""Delivery outcomes shared by the worker and the adapters (Slack, pager)."""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery did not happen. ``retry_after`` None means permanent."""

    def __init__(self, message: str, *, retry_after: float | None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class NotReady(Exception):
    """The message depends on one not delivered yet (an update before its original)."""
