"""Notification channels: e-mail (SMTP, STARTTLS or implicit TLS, optional login), Slack-style
incoming webhooks, and HMAC-signed webhooks. Each send is one attempt with a typed outcome; the
caller (`verifier.notifier`) logs it and schedules retries."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from verifier.errors import InvalidInputError
from verifier.ops_model import CHANNEL_KINDS, SECRET_SETTINGS, Channel
from verifier.webhooks import signature_header

_EMAIL_SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True, slots=True)
class Attempt:
    delivered: bool
    status_code: int | None  # HTTP status or SMTP reply code, when the peer answered
    error: str | None


def _text(settings: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = settings.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"channel setting {key!r} must be a non-empty string")
    return value


def _url(settings: Mapping[str, Any]) -> str:
    url = _text(settings, "url")
    assert url is not None
    if not url.startswith(("https://", "http://")):
        raise InvalidInputError("channel setting 'url' must be an http(s) URL")
    return url


def check_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a channel of `kind` needs, validated; unknown keys are refused so a typo
    never silently drops a setting. Raises InvalidInputError with the reason."""
    allowed = {"email": {"host", "port", "security", "username", "password", "from_addr",
                         "to_addrs", "ca_file", "timeout_s"},
               "slack": {"url"}, "webhook": {"url", "secret"}}
    if kind not in CHANNEL_KINDS:
        raise InvalidInputError(f"channel kind must be one of {CHANNEL_KINDS}")
    unknown = set(settings) - allowed[kind]
    if unknown:
        raise InvalidInputError(f"unknown {kind} channel settings: {sorted(unknown)}")
    if kind == "slack":
        return {"url": _url(settings)}
    if kind == "webhook":
        # An empty secret would make every signature forgeable.
        return {"url": _url(settings), "secret": _text(settings, "secret")}
    port = settings.get("port", 587)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidInputError("channel setting 'port' must be 1..65535")
    security = settings.get("security", "starttls")
    if security not in _EMAIL_SECURITY:
        raise InvalidInputError(f"channel setting 'security' must be one of {_EMAIL_SECURITY}")
    username = _text(settings, "username", required=False)
    password = _text(settings, "password", required=False)
    if (username is None) != (password is None):
        raise InvalidInputError("give both 'username' and 'password', or neither")
    if username is not None and security == "none":
        raise InvalidInputError("refusing to send an SMTP password without TLS")
    to_addrs = settings.get("to_addrs")
    if (not isinstance(to_addrs, list) or not to_addrs
            or not all(isinstance(a, str) and "@" in a for a in to_addrs)):
        raise InvalidInputError("channel setting 'to_addrs' must be a non-empty list of "
                                "addresses")
    from_addr = _text(settings, "from_addr")
    if from_addr is None or "@" not in from_addr:
        raise InvalidInputError("channel setting 'from_addr' must be an e-mail address")
    timeout_s = settings.get("timeout_s", 10.0)
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise InvalidInputError("channel setting 'timeout_s' must be a positive number")
    return {"host": _text(settings, "host"), "port": port, "security": security,
            "username": username, "password": password, "from_addr": from_addr,
            "to_addrs": list(to_addrs), "ca_file": _text(settings, "ca_file", required=False),
            "timeout_s": float(timeout_s)}


def public_settings(channel: Channel) -> dict[str, Any]:
    """The settings the API may show: secrets replaced by whether one is set."""
    return {k: (v is not None if k in SECRET_SETTINGS else v)
            for k, v in channel.settings.items()}


def summary(body: bytes) -> tuple[str, str]:
    """(subject line, plain text) of one alert event, for people rather than machines."""
    payload = json.loads(body)
    alert = payload["alert"]
    status = payload["event"].removeprefix("alert.")
    subject = (f"[Lightfence] {alert['severity']}: {alert['type']} on {alert['subject_kind']} "
               f"{alert['subject_id']} ({status})")
    opened = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(alert["opened_unix_ns"] / 1e9))
    lines = [subject, "", alert["message"], "", f"alert id: {alert['alert_id']}",
             f"opened: {opened}"]
    for who in ("acknowledged", "resolved"):
        if alert.get(f"{who}_by"):
            lines.append(f"{who} by {alert[f'{who}_by']}: {alert[f'{who}_reason']}")
    lines += ["", "details: " + json.dumps(alert["details"], sort_keys=True)]
    return subject, "\n".join(lines)


async def send(channel: Channel, body: bytes, client: httpx.AsyncClient) -> Attempt:
    """One delivery attempt of an alert event (`body`: {"event", "alert"} JSON)."""
    settings = channel.settings
    if channel.kind == "email":
        subject, text = summary(body)
        return await asyncio.to_thread(_send_email, settings, subject, text)
    if channel.kind == "slack":
        _, text = summary(body)
        return await _post(client, settings["url"], json.dumps({"text": text}).encode(),
                           {"Content-Type": "application/json"})
    timestamp_s = int(time.time())
    return await _post(client, settings["url"], body, {
        "Content-Type": "application/json",
        "X-Lightfence-Timestamp": str(timestamp_s),
        "X-Lightfence-Signature": signature_header(settings["secret"], timestamp_s, body)})


async def _post(client: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> Attempt:
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return Attempt(True, response.status_code, None)
    return Attempt(False, response.status_code, f"HTTP {response.status_code}")


def _send_email(settings: Mapping[str, Any], subject: str, text: str) -> Attempt:
    message = EmailMessage()
    message["From"] = settings["from_addr"]
    message["To"] = ", ".join(settings["to_addrs"])
    message["Subject"] = subject
    message.set_content(text)
    context = ssl.create_default_context(cafile=settings.get("ca_file"))
    host, port, timeout_s = settings["host"], settings["port"], settings["timeout_s"]
    try:
        smtp = (smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=context)
                if settings["security"] == "tls" else smtplib.SMTP(host, port, timeout=timeout_s))
        with smtp:
            if settings["security"] == "starttls":
                # Raises if the server does not offer STARTTLS: never fall back to plain text.
                smtp.starttls(context=context)
            if settings.get("username"):
                smtp.login(settings["username"], settings["password"])
            refused = smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return Attempt(False, exc.smtp_code, f"SMTP {exc.smtp_code}: {detail}")
    except (smtplib.SMTPException, OSError) as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}")
    if refused:
        return Attempt(False, None, f"recipients refused: {sorted(refused)}")
    return Attempt(True, 250, None)
