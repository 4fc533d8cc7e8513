"""Is the bot in a channel? Asked when a desk is saved (Slack modal, ``preflight desk add|set``).

A desk whose channel the bot isn't in saves fine and fails the next morning with
``not_in_channel``; so a save asks Slack first (``conversations.info`` -> ``is_member``;
scopes ``channels:read`` / ``groups:read``) and refuses with the way to fix it. The domain
(``bot.desks.service``) takes the check as a plain callable (``ChannelCheck``) and never
imports Slack.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ServiceError

BOT_NAME = "@IB Preflight"


def invite_hint(channel_id: str) -> str:
    return f"Invite the bot with /invite {BOT_NAME} in that channel ({channel_id}), then save again."


def channel_check(client: WebClient) -> Callable[[str, str], None]:
    """``check(channel_id, field)``: returns when the bot is a member of the channel; a
    ServiceError naming ``field`` when it isn't, when the channel doesn't exist, or when
    Slack can't be asked (never a silent yes)."""

    def check(channel_id: str, field: str) -> None:
        try:
            answer = client.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in ("channel_not_found", "not_in_channel"):
                # A private channel the bot isn't in is "not found" to it.
                raise ServiceError(
                    f"The channel {channel_id} was not found, or it is private and the bot isn't in it. "
                    + invite_hint(channel_id),
                    field=field,
                ) from None
            raise ServiceError(
                f"Slack refused to say whether the bot is in {channel_id} ({error or 'error'}); nothing saved.",
                field=field,
            ) from None
        except Exception as exc:  # a connection error, a timeout: said in one line, nothing saved
            raise ServiceError(
                f"Slack could not be reached to check the bot is in {channel_id} "
                f"({type(exc).__name__}); nothing saved, try again.",
                field=field,
            ) from None
        info = answer.get("channel") or {}
        if not isinstance(info, dict) or not info.get("is_member"):
            raise ServiceError(f"The bot is not in {channel_id}. " + invite_hint(channel_id), field=field)

    return check


def cli_channel_check(token: str | None, api_url: str) -> Callable[[str, str], None]:
    """The check for ``preflight desk add|set``: without a bot token it can't ask Slack, and
    says so in one line rather than saving a channel nobody checked."""
    if not token:

        def unchecked(channel_id: str, field: str) -> None:
            raise ServiceError(
                f"SLACK_BOT_TOKEN is not set, so whether the bot is in {channel_id} can't be checked; "
                "set it (the bot token, xoxb-...) and run again",
                field=field,
            )

        return unchecked
    return channel_check(WebClient(token=token, base_url=api_url, timeout=10))
