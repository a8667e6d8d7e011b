"""Build and deliver one email with aiosmtplib, sorting SMTP failures into retry / never retry.

4xx replies, timeouts and dropped connections are transient (the server asks us to
come back); 5xx replies are permanent (a rejected recipient stays rejected), and so is an
internationalised address (IDN, UTF-8 local part) when the server does not offer SMTPUTF8;
when it does, aiosmtplib sends with SMTPUTF8.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
from taskfleet_core.settings import SmtpSettings
from taskfleet_core.tasks.contracts import SendEmailArgs
from taskfleet_core.tasks.errors import PermanentError, TransientError


class RecipientRejected(PermanentError):
    """Every recipient was refused with a 5xx reply."""


class AddressNotSupported(PermanentError):
    """An internationalised address (RFC 6531) and a server that does not offer SMTPUTF8."""


def build_message(args: SendEmailArgs, settings: SmtpSettings, dedupe_key: str) -> EmailMessage:
    """A multipart/alternative message; the Message-ID is derived from the dedupe key so a
    duplicate that does slip through is recognisable downstream."""
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = ", ".join(args.to)
    message["Subject"] = args.subject
    message["Date"] = formatdate(usegmt=True)
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@taskfleet.local>"
    if args.reply_to:
        message["Reply-To"] = args.reply_to
    message.set_content(args.text)
    if args.html:
        message.add_alternative(args.html, subtype="html")
    return message


def _is_transient(code: int) -> bool:
    return 400 <= code < 500


async def deliver(message: EmailMessage, settings: SmtpSettings) -> dict[str, Any]:
    """Send ``message``; returns accepted/refused recipients, raises Transient/PermanentError."""
    try:
        refused, reply = await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(_is_transient(code) for code in codes):
            raise TransientError(f"recipients deferred: {detail}") from None
        raise RecipientRejected(f"recipients refused: {detail}") from None
    except aiosmtplib.SMTPNotSupported as exc:
        # an internationalised address (IDN domain, UTF-8 local part) and a server without SMTPUTF8: asking
        # again will not change the server's extensions, so this is permanent (no retry loop)
        raise AddressNotSupported(f"SMTP server cannot deliver to this address: {exc}") from None
    except aiosmtplib.SMTPResponseException as exc:
        if _is_transient(exc.code):
            raise TransientError(f"SMTP {exc.code}: {exc.message}") from None
        raise PermanentError(f"SMTP {exc.code}: {exc.message}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # connect errors, timeouts, a server that hung up: try again later
        raise TransientError(f"SMTP unavailable: {exc.__class__.__name__}: {exc}") from None

    recipients = [addr.strip() for addr in message["To"].split(",")]
    return {
        "message_id": message["Message-ID"],
        "accepted": [r for r in recipients if r not in refused],
        # partially refused recipients are reported, not retried: the others already got the mail
        "refused": {addr: f"{resp.code} {resp.message}" for addr, resp in refused.items()},
        "reply": reply,
    }
