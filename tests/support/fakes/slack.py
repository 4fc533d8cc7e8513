"""A fake Slack Web API served over HTTP on loopback.

A real ``WebClient(base_url=fake.base_url)`` talks to it. It records every call
(method, decoded params, token), answers in the Web API's wire format, and can
inject faults: scripted responses (429 with Retry-After, 5xx, ``ok: false``,
slow answers that time the client out), a per-method rate limit and a per-channel one
(``rate_limit_channel``: Slack's "one message per second per channel" for ``chat.postMessage``);
``slack_tiers()`` turns on the documented limits the bot paces itself by (``bot.delivery.tiers``).

As real Slack does, a message sent with a user ID as ``channel`` comes back with a ``D…``
channel id, and ``chat.update`` / ``chat.postEphemeral`` refuse a user ID as channel
(``channel_not_found``); ``views.open`` refuses a trigger older than 3 seconds
(``expired_trigger_id``, for triggers made by ``tests.support.harness``). ``users.info`` answers for
users added with ``add_user`` (``user_not_found`` otherwise); ``users.list`` pages through them
(``limit``, ``cursor``, ``response_metadata.next_cursor``).

``apps.connections.open`` wants an app-level token (``xapp-…``; anything else:
``not_allowed_token_type``, as Slack answers) and answers with a WebSocket URL from
``websocket`` (``FakeSocketMode.issue_url`` of ``tests.support.fakes.socket_mode``) when set.

Messages posted are kept per channel (``messages``) with their message metadata, and
``conversations.history`` answers with them as Slack does (https://api.slack.com/methods/
conversations.history): newest first, ``oldest``/``latest`` exclusive unless ``inclusive``,
``limit`` (default 100) with ``has_more`` and a ``next_cursor``, and a message's ``metadata``
only with ``include_all_metadata``. Interactions' ``response_url`` s point here too (``response_url``):
what is posted to them is kept in ``responses`` (``responded``). A message's ``ts`` is the real time of its post (and a
counter). ``Fault(accepted=True, delay=...)`` is a call Slack carries out whose answer comes
late (past the client's timeout, say): the message is posted, the caller never hears of it.

``strict = True`` also refuses what real Slack refuses for size (each check cites Slack's
docs): more than 50 blocks in a message or 100 in a view, a block that slack_sdk's models
reject (text longer than its limit, too many elements…) -> ``invalid_blocks``; more than
``MESSAGE_CHARS`` characters of block text in one message -> ``msg_blocks_too_long``;
``private_metadata`` over 3,000 characters.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

JSON_FIELDS = {"blocks", "view", "attachments", "files", "metadata", "channels", "users"}
# https://api.slack.com/reference/block-kit/blocks : 50 blocks per message, 100 per modal / Home.
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# Not documented; users report refusals (msg_blocks_too_long) above about 12,000-13,000
# characters of text across a message's blocks.
MESSAGE_CHARS = 12000
# https://api.slack.com/reference/surfaces/views : private_metadata at most 3,000 characters.
PRIVATE_METADATA = 3000
# https://api.slack.com/interactivity/handling#modal_responses : a trigger_id expires in 3 s.
TRIGGER_LIFE_NS = 3_000_000_000
MESSAGE_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral"}
VIEW_METHODS = {"views.open", "views.update", "views.push", "views.publish"}
# https://api.slack.com/interactivity/handling#message_responses : 5 responses per response_url.
RESPONSES_PER_URL = 5
POLL = 0.02  # seconds between serve_forever's checks for shutdown()


def text_size(node: Any) -> int:
    """Characters of text in blocks (text objects, raw_text cells, rich-text runs)."""
    if isinstance(node, dict):
        own = (
            len(node["text"])
            if node.get("type") in ("plain_text", "mrkdwn", "raw_text", "text") and isinstance(node.get("text"), str)
            else 0
        )
        return own + sum(text_size(v) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(text_size(v) for v in node)
    return 0


def block_problem(block: dict[str, Any]) -> str | None:
    """What slack_sdk's models (which encode many of Slack's documented limits) reject."""
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    try:
        parsed = Block.parse(block)
        if parsed is None:
            return f"unknown block type {block.get('type')!r}"
        parsed.validate_json()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
        return str(exc)[:200]
    return None


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float


@dataclass
class Fault:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accepted: bool = False  # Slack carries the call out (and answers after ``delay``)


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def cursor_of(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def offset_of(cursor: Any) -> int | None:
    """The offset a cursor stands for; 0 for none; None for a cursor Slack never gave."""
    if not cursor:
        return 0
    try:
        kind, _, number = base64.b64decode(str(cursor)).decode().partition(":")
        return int(number) if kind == "offset" else None
    except ValueError:
        return None


RESPONSE_URL = "response_url"  # Call.method of a POST to an interaction's response_url


class FakeSlack:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.rejected: list[Call] = []  # calls answered with a fault or a rate limit
        self.uploads: dict[str, bytes] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._limits: dict[str, tuple[float, float]] = {}  # method -> (interval, retry_after)
        self._last_allowed: dict[str, float] = {}
        self._channel_limits: dict[str, tuple[float, float]] = {}  # method -> (interval, retry_after) per channel
        self._last_in_channel: dict[tuple[str, str], float] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.strict = False
        self.users: dict[str, dict[str, Any]] = {}
        self.unlisted: set[str] = set()
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages, oldest first
        self.websocket: Callable[[], str] | None = None  # Socket Mode URLs for apps.connections.open
        # conversations.info: the bot is in every channel unless a test says otherwise.
        self.outside: set[str] = set()  # channels the bot is not a member of
        self.missing: set[str] = set()  # channels that don't exist (channel_not_found)
        self.responses: list[Call] = []  # messages posted to interactions' response_urls
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.startswith("/upload/"):
                    file_id = self.path.rsplit("/", 1)[-1]
                    with fake._lock:
                        fake.uploads[file_id] = raw
                    self._send(200, b"OK - %d" % len(raw), "text/plain")
                    return
                if self.path.startswith("/response/"):
                    status, text = fake._respond(self.path, raw)
                    params = fake._decode(raw, self.headers.get("Content-Type", ""))
                    params["_url"] = self.path
                    with fake._lock:  # also a call, for tests that read calls by method
                        fake.calls.append(Call(RESPONSE_URL, params, None, time.monotonic()))
                    self._send(status, text.encode(), "text/plain")
                    return
                method = self.path.split("/api/", 1)[-1].split("?")[0]
                params = fake._decode(raw, self.headers.get("Content-Type", ""))
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
                status, body, headers, delay = fake._answer(method, params, token)
                if delay:
                    time.sleep(delay)
                payload = json.dumps(body).encode()
                self._send(status, payload, "application/json", headers)

            def _send(self, status: int, payload: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        # What the harness sends as an interaction's response_url (+ the user id): posts to it
        # are recorded as calls of RESPONSE_URL.
        self.response_base = f"http://127.0.0.1:{self.port}/response/"
        # serve_forever checks for shutdown() once per poll: the default 0.5 s made every
        # test's teardown wait up to half a second.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- fault injection -------------------------------------------------------
    def script(self, method: str, *faults: Fault) -> None:
        """Answer the next calls of ``method`` with these faults, in order, then normally."""
        with self._lock:
            self._faults.setdefault(method, deque()).extend(faults)

    def heal(self, method: str | None = None) -> None:
        """Drop the scripted faults not yet used (of ``method``, or all): Slack is back."""
        with self._lock:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method, None)

    def rate_limit(self, method: str, per_second: float, retry_after: int = 1) -> None:
        """Answer 429 + Retry-After when ``method`` is called faster than ``per_second``."""
        with self._lock:
            self._limits[method] = (1.0 / per_second, retry_after)

    def rate_limit_channel(self, method: str, per_second: float = 1.0, retry_after: int = 1) -> None:
        """Answer 429 + Retry-After when ``method`` is called for one channel faster than
        ``per_second`` (a strict interval: burstier than Slack, which allows short bursts)."""
        with self._lock:
            self._channel_limits[method] = (1.0 / per_second, retry_after)

    def slack_tiers(self, retry_after: int = 1) -> FakeSlack:
        """Slack's documented limits (https://api.slack.com/docs/rate-limits) on the methods the
        outbox sends, as strict intervals: ``chat.postMessage`` one a second per channel,
        ``chat.update`` and ``conversations.history`` Tier 3's 50 a minute."""
        self.rate_limit_channel("chat.postMessage", per_second=1.0, retry_after=retry_after)
        for method in ("chat.update", "conversations.history"):
            self.rate_limit(method, per_second=50 / 60, retry_after=retry_after)
        return self

    def add_user(
        self,
        user_id: str,
        display_name: str = "",
        real_name: str = "",
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        deleted: bool = False,
        tz: str = "America/New_York",
        listed: bool = True,
    ) -> dict[str, Any]:
        """A user ``users.info`` knows (https://api.slack.com/types/user); ``users.list`` lists
        them unless ``listed`` is False (a Slack Connect guest from another workspace, say)."""
        user = {
            "id": user_id,
            "name": (real_name or user_id).lower().replace(" ", "."),
            "real_name": real_name,
            "tz": tz,
            "deleted": deleted,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_bot": False,
            "profile": {"display_name": display_name, "real_name": real_name},
        }
        with self._lock:
            self.users[user_id] = user
            if not listed:
                self.unlisted.add(user_id)
        return user

    def response_url(self, name: str) -> str:
        """A response_url for an interaction (the harness puts one in every click it sends)."""
        return f"http://127.0.0.1:{self.port}/response/{name}"

    # -- inspection ------------------------------------------------------------
    def leave(self, *channels: str) -> None:
        """The bot is not a member of ``channels`` (conversations.info says is_member false)."""
        self.outside.update(channels)

    def join(self, *channels: str) -> None:
        self.outside.difference_update(channels)

    def responded(self, user: str | None = None) -> list[dict[str, Any]]:
        """Messages posted to response_urls (of interactions by ``user``: the harness names a
        click's URL after its user)."""
        with self._lock:
            return [c.params for c in self.responses if user is None or c.token == user]

    def told(self, user: str) -> list[str]:
        """The texts only ``user`` was shown, in order: replies through their interactions'
        response_urls and ``chat.postEphemeral`` messages alike."""
        with self._lock:
            shown = [c for c in self.responses if c.token == user]
            shown += [c for c in self.calls if c.method == "chat.postEphemeral" and c.params.get("user") == user]
        return [str(c.params.get("text")) for c in sorted(shown, key=lambda c: c.at)]

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # -- internals ---------------------------------------------------------------
    def _respond(self, path: str, raw: bytes) -> tuple[int, str]:
        """A POST to a response_url: JSON in; up to RESPONSES_PER_URL per URL, as at Slack
        (https://api.slack.com/interactivity/handling#message_responses), then ``used_url``."""
        name = path.rsplit("/", 1)[-1]
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            return 400, "invalid_payload"
        with self._lock:
            if sum(1 for c in self.responses if c.method == path) >= RESPONSES_PER_URL:
                return 404, "used_url"
            self.responses.append(Call(path, params, name.split("-", 1)[0], time.monotonic()))
        return 200, "ok"

    @staticmethod
    def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
        if not raw:
            return {}
        if "json" in content_type:
            data = json.loads(raw)
            return data if isinstance(data, dict) else {"_": data}
        params: dict[str, Any] = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        for key in JSON_FIELDS & params.keys():
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                pass
        return params

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> tuple[int, Any, dict[str, str], float]:
        call = Call(method, params, token, time.monotonic())
        with self._lock:
            queue = self._faults.get(method)
            late = 0.0
            if queue:
                fault = queue.popleft()
                if fault.accepted:
                    late = fault.delay
                else:
                    self.rejected.append(call)
                    body = fault.body if fault.body is not None else {"ok": False, "error": "fatal_error"}
                    return fault.status, body, fault.headers, fault.delay
            limit = self._limits.get(method)
            if limit is not None:
                interval, retry_after = limit
                last = self._last_allowed.get(method)
                if last is not None and call.at - last < interval:
                    self.rejected.append(call)
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}, 0.0
                self._last_allowed[method] = call.at
            per_channel = self._channel_limits.get(method)
            channel = str(params.get("channel") or "")
            if per_channel is not None and channel:
                interval, retry_after = per_channel
                last = self._last_in_channel.get((method, channel))
                if last is not None and call.at - last < interval:
                    self.rejected.append(call)
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}, 0.0
                self._last_in_channel[(method, channel)] = call.at
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}, 0.0
            refusal = self._refusal(method, params, token)
            if refusal is not None:
                self.rejected.append(call)
                return 200, {"ok": False, "error": refusal[0], "errors": [refusal[1]]}, {}, 0.0
            self.calls.append(call)
            return 200, self._ok(method, params), {}, late

    def _refusal(self, method: str, params: dict[str, Any], token: str | None = None) -> tuple[str, str] | None:
        """(error, detail) for a call real Slack would refuse."""
        channel = str(params.get("channel") or "")
        if method in ("chat.update", "chat.postEphemeral", "chat.delete") and channel[:1] in ("U", "W"):
            return "channel_not_found", "a user ID is not a conversation: use the D… id Slack returned"
        if method == "views.open":
            trigger = str(params.get("trigger_id") or "")
            issued = trigger.rsplit("-", 1)[-1]
            if trigger.startswith("trig-") and issued.isdigit():
                if time.monotonic_ns() - int(issued) > TRIGGER_LIFE_NS:
                    return "expired_trigger_id", "the trigger is more than 3 seconds old"
        if method == "apps.connections.open" and not str(token or "").startswith("xapp-"):
            return "not_allowed_token_type", "apps.connections.open takes an app-level token (xapp-...)"
        if method == "users.info":
            if str(params.get("user") or "") not in self.users:
                return "user_not_found", "no such user"
        if method in ("users.list", "conversations.history") and offset_of(params.get("cursor")) is None:
            return "invalid_cursor", "Value passed for cursor was not valid or is no longer valid."
        if not self.strict:
            return None
        if method in MESSAGE_METHODS:
            blocks = params.get("blocks") or []
            return self._blocks_problem(blocks if isinstance(blocks, list) else [], MESSAGE_BLOCKS, message=True)
        if method in VIEW_METHODS:
            view = params.get("view") or {}
            if not isinstance(view, dict):
                return "invalid_arguments", "view is not an object"
            if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA:
                return "invalid_arguments", "private_metadata must be no longer than 3000 characters"
            try:
                from slack_sdk.models.views import View

                View(**view).validate_json()
            except Exception as exc:
                return "invalid_arguments", str(exc)[:200]
            return self._blocks_problem(view.get("blocks") or [], VIEW_BLOCKS, message=False)
        return None

    @staticmethod
    def _blocks_problem(blocks: list[Any], limit: int, *, message: bool) -> tuple[str, str] | None:
        if len(blocks) > limit:
            return "invalid_blocks", f"must provide no more than {limit} items [json-pointer:/blocks]"
        for index, block in enumerate(blocks):
            problem = block_problem(block) if isinstance(block, dict) else "not an object"
            if problem:
                return "invalid_blocks", f"{problem} [json-pointer:/blocks/{index}]"
        if message and text_size(blocks) > MESSAGE_CHARS:
            return "msg_blocks_too_long", f"{text_size(blocks)} characters of block text"
        return None

    @staticmethod
    def _page(key: str, items: list[Any], params: dict[str, Any], *, default_limit: int) -> dict[str, Any]:
        """One page of ``items`` from the cursor's offset (``limit`` 0: everything left)."""
        start = offset_of(params.get("cursor")) or 0
        limit = int(params.get("limit") or default_limit)
        end = len(items) if limit <= 0 else start + limit
        more = end < len(items)
        return {
            "ok": True,
            key: items[start:end],
            "has_more": more,
            "response_metadata": {"next_cursor": cursor_of(end) if more else ""},
        }

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        inclusive = truthy(params.get("inclusive"))
        oldest = float(params.get("oldest") or 0)
        latest = float(params["latest"]) if params.get("latest") else float("inf")

        def within(ts: float) -> bool:
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        found = [m for m in reversed(self.messages.get(str(params.get("channel") or ""), [])) if within(float(m["ts"]))]
        if not truthy(params.get("include_all_metadata")):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        return self._page("messages", found, params, default_limit=100)

    def _ok(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ts)
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{n:06d}"
            channel = str(params.get("channel") or "")
            if channel[:1] in ("U", "W"):  # a DM by user ID: Slack answers with the DM's own id
                channel = "D" + channel[1:]
            message: dict[str, Any] = {
                "type": "message",
                "ts": ts,
                "user": "UBOT",
                "bot_id": "BBOT",
                "app_id": "A1",
                "text": params.get("text"),
                "blocks": params.get("blocks") or [],
            }
            if isinstance(params.get("metadata"), dict):
                message["metadata"] = params["metadata"]
            self.messages.setdefault(channel, []).append(message)
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": params.get("text")},
            }
        if method == "chat.update":
            for message in self.messages.get(str(params.get("channel") or ""), []):
                if message["ts"] == params.get("ts"):
                    message["text"], message["blocks"] = params.get("text"), params.get("blocks") or []
                    if isinstance(params.get("metadata"), dict):
                        message["metadata"] = params["metadata"]
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": params.get("ts"),
                "text": params.get("text"),
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1_700_000_000 + n}.{n:06d}"}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = params.get("view") or {}
            return {"ok": True, "view": {**view, "id": f"V{n:08d}"}}
        if method == "conversations.open":
            users = str(params.get("users") or "")
            return {"ok": True, "channel": {"id": "D" + users.replace(",", "")[1:]}}
        if method == "users.info":
            return {"ok": True, "user": self.users[str(params.get("user"))]}
        if method == "users.list":
            members = [self.users[u] for u in sorted(self.users) if u not in self.unlisted]
            return self._page("members", members, params, default_limit=0)
        if method == "conversations.history":
            return self._history(params)
        if method == "conversations.info":
            channel = str(params.get("channel") or "")
            if channel in self.missing:
                return {"ok": False, "error": "channel_not_found"}
            info = {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_member": channel not in self.outside,
            }
            return {"ok": True, "channel": info}
        if method == "chat.getPermalink":
            ts = str(params.get("message_ts") or "")
            return {
                "ok": True,
                "permalink": f"https://fake.slack.com/archives/{params.get('channel')}/p{ts.replace('.', '')}",
            }
        if method == "apps.connections.open" and self.websocket is not None:
            return {"ok": True, "url": self.websocket()}
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "bot_id": "BBOT",
                "team": "Fake Workspace",
                "team_id": "T1",
                "url": "https://fake/",
            }
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids):08d}"
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            }
        if method == "files.completeUploadExternal":
            files = params.get("files") or []
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}
        return {"ok": True}
