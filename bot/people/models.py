"""The cached profile of a Slack user (``users.info``), so names never cost a Slack call on
the hot path."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime


class Person(SQLModel, table=True):
    """One Slack user as last seen through ``users.info`` or a ``user_change`` event."""

    __tablename__ = "slack_user"

    user_id: str = Field(primary_key=True, max_length=32)
    display_name: str = Field(default="", max_length=255)
    real_name: str = Field(default="", max_length=255)
    handle: str = Field(default="", max_length=255, description="the legacy @name")
    tz: str | None = Field(default=None, max_length=64)
    deleted: bool = False
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    fetched_at: datetime = Field(sa_type=UTCDateTime, index=True)
    error: str | None = Field(default=None, max_length=64, description="e.g. user_not_found")
