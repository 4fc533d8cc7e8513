"""Drive the real app over HTTP: signed requests into /slack/events, served by waitress."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk import WebClient

from bot.config import Settings
from bot.runtime import Runtime, build
from bot.web import make_server

SIGNING_SECRET = "test-signing-secret"
SECRET_KEYS = ("test-preflight-secret-key",)  # the instance keys (pager secrets, signed exports)
BOT_TOKEN = "xoxb-test-token"
# One TLS context for every Bot's HTTP client: httpx otherwise loads the CA bundle for each new
# client (~35 ms of CPU each, one per test using the bot) although the bot is plain HTTP on loopback.
TLS = ssl.create_default_context()


class FakeClock:
    """The domain clock: tests set and advance it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        assert now.tzinfo is not None
        self.now = now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class TrackingExecutor(ThreadPoolExecutor):
    """The app's after-ack pool, with a way to wait until all queued work has finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=8)
        self._futures: list[Future[Any]] = []
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._futures.append(future)
        return future

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
                self._futures = pending
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("listeners still running")
            time.sleep(0.01)


def sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class Bot:
    """The running bot (real WSGI server on loopback) and a Slack-like client for it."""

    def __init__(
        self,
        engine: Any,
        slack_base_url: str,
        clock: FakeClock | None,
        *,
        roster_interval: float = 0.2,
        roster_rate: float = 6000.0,
        secret_keys: tuple[str, ...] | None = None,
        clock_offset: int = 0,
        client: WebClient | None = None,
    ) -> None:
        """``clock=None``: the app's own clock from its settings (real time + ``clock_offset``);
        ``client``: the app's Web API client (default: slack_sdk's, which retries only
        connection errors)."""
        settings = Settings(
            database_url=str(engine.url),
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack_base_url,
            secret_keys=SECRET_KEYS if secret_keys is None else secret_keys,
            clock_offset=clock_offset,
            allow_private_pager=True,  # the fake pager listens on http://127.0.0.1
        )
        self.client = client or WebClient(token=BOT_TOKEN, base_url=slack_base_url, timeout=5)
        self.slack_base_url = slack_base_url
        # An interaction's response_url points at the fake Slack, which records what is posted to it.
        self.response_base = slack_base_url.rsplit("/api/", 1)[0] + "/response/"
        self.executor = TrackingExecutor()
        self.urgent = TrackingExecutor()  # modal opens (bot.slack.deps.Deps.urgent)
        self.clock = clock or FakeClock(datetime.now(UTC))  # unused by the app when clock is None
        self.runtime: Runtime = build(
            settings,
            engine=engine,
            client=self.client,
            clock=clock,
            executor=self.executor,
            urgent_executor=self.urgent,
            roster_interval=roster_interval,
            roster_rate=roster_rate,
        )
        self.runtime.refresher.start()
        self.server = make_server(self.runtime.web, host="127.0.0.1", port=0, threads=8)
        self._closing = False
        self.url = f"http://127.0.0.1:{self.server.effective_port}"  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.http = httpx.Client(base_url=self.url, timeout=10, verify=TLS)

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:  # close() pulled the socket out from under the loop: that's the shutdown
            if not self._closing:
                raise

    def close(self) -> None:
        self._closing = True
        self.http.close()
        self.server.close()
        self.runtime.refresher.stop()
        self.executor.shutdown(wait=True)
        self.urgent.shutdown(wait=True)

    # -- waiting ---------------------------------------------------------------
    def settle(self, timeout: float = 10.0) -> None:
        """Wait for listeners to finish and the roster to be rendered."""
        self.urgent.drain(timeout)
        self.executor.drain(timeout)
        self.executor.drain(timeout)  # work the first wave queued
        assert self.runtime.refresher.wait_idle(timeout), "roster refresher did not settle"

    # -- raw requests ------------------------------------------------------------
    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        ts = timestamp if timestamp is not None else str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature if signature is not None else sign(body, ts),
        }
        return self.http.post("/slack/events", content=body, headers=headers)

    def post_form(self, form: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)

    def post_json(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.post(json.dumps(payload).encode(), "application/json", **kwargs)

    # -- Slack-shaped requests -------------------------------------------------------
    def command(self, user: str, text: str = "", command: str = "/ibstatus", channel: str = "C0123") -> httpx.Response:
        return self.post_form(
            {
                "token": "legacy",
                "team_id": "T1",
                "team_domain": "desk",
                "channel_id": channel,
                "channel_name": "desk",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A1",
                "response_url": f"{self.response_base}{user}",
                "trigger_id": "1.2.3",
            }
        )

    def click(
        self, user: str, action_id: str, value: str, *, channel: str = "C0123", message_ts: str = "1.0"
    ) -> httpx.Response:
        payload = click_payload(
            user, action_id, value, channel=channel, message_ts=message_ts, response_url=self.response_url(user)
        )
        return self.post_form({"payload": json.dumps(payload)})

    def response_url(self, user: str) -> str:
        """A click's response_url, at the fake Slack (``FakeSlack.responded(user)``)."""
        return self.slack_base_url.replace("/api/", f"/response/{user}-{time.monotonic_ns()}")

    def home_click(
        self, user: str, action_id: str, value: str = "", *, trigger_id: str | None = None
    ) -> httpx.Response:
        """A button clicked in the user's App Home (no channel: the container is the Home view)."""
        payload = {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "desk"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "view", "view_id": "VHOME"},
            "trigger_id": trigger_id or f"trig-{user}-{time.monotonic_ns()}",
            "view": {"id": "VHOME", "type": "home", "callback_id": "", "private_metadata": "", "blocks": []},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "home",
                    "text": {"type": "plain_text", "text": "x"},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return self.post_form({"payload": json.dumps(payload)})

    def submit_view(
        self, user: str, callback_id: str, values: dict[str, Any], private_metadata: str = ""
    ) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "team": {"id": "T1", "domain": "desk"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": f"trig-{user}-{time.monotonic_ns()}",  # Slack's is new for every interaction
            "view": {
                "id": "V1",
                "team_id": "T1",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": values},
                "hash": "1.abc",
            },
            "response_urls": [],
        }
        return self.post_form({"payload": json.dumps(payload)})

    def tick(
        self,
        user: str,
        view: dict[str, Any],
        block_id: str,
        values: list[str],
        *,
        action_id: str = "value",
        view_id: str = "V-modal",
        view_hash: str = "h-1",
    ) -> httpx.Response:
        """Tick ``values`` in the checkboxes ``block_id`` of an open modal ``view``: the
        block_actions Slack sends for an input block with ``dispatch_action``."""
        options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in values]
        payload = {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "desk"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": f"trig-{user}-{time.monotonic_ns()}",
            "view": {
                "id": view_id,
                "hash": view_hash,
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view.get("private_metadata", ""),
                "state": {"values": {block_id: {action_id: {"type": "checkboxes", "selected_options": options}}}},
            },
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "type": "checkboxes",
                    "selected_options": options,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return self.post_form({"payload": json.dumps(payload)})

    def event(self, event: dict[str, Any]) -> httpx.Response:
        return self.post_json(
            {
                "token": "legacy",
                "team_id": "T1",
                "api_app_id": "A1",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{time.monotonic_ns()}",
                "event_time": int(time.time()),
            }
        )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def recorded_guidance(ack: Any) -> str:
    """The guidance a stored problem report's modal turns into: the submission's
    acknowledgement is ``response_action: update`` with it (no Web API call)."""
    assert ack["response_action"] == "update" and ack["view"]["title"]["text"] == "Report recorded", ack
    return str(ack["view"]["blocks"][0]["text"]["text"])


def click_payload(
    user: str, action_id: str, value: str, *, channel: str, message_ts: str, response_url: str
) -> dict[str, Any]:
    """A button click on a message (``block_actions``), as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "desk"},
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"trig-{user}-{time.monotonic_ns()}",
        "channel": {"id": channel, "name": "desk"},
        "message": {"type": "message", "ts": message_ts, "text": "checklist"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "checklist_actions",
                "text": {"type": "plain_text", "text": "x"},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return payload
