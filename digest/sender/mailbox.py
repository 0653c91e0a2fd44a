"""The one mailbox bounces, complaints and mailto unsubscribes come back to: IMAP over TLS, or a Maildir.

`read(handle)` hands every unread message to `handle(raw bytes)` and marks it read only after `handle`
returned, so a run stopped in the middle leaves the rest unread for the next one (and the store remembers
the messages it already applied, so the one in hand is not counted twice).
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import re
import ssl
from collections.abc import Callable
from pathlib import Path

from digest.config import BouncesSettings
from digest.errors import DeliveryError

Handler = Callable[[bytes], None]


def describe(settings: BouncesSettings) -> str:
    if settings.imap_host:
        scheme = "imaps" if settings.imap_mode == "ssl" else "imap+starttls"
        return f"{scheme}://{settings.imap_user}@{settings.imap_host}:{settings.imap_port}/{settings.imap_folder}"
    return str(settings.maildir) if settings.maildir else ""


def read(settings: BouncesSettings, handle: Handler) -> int:
    """How many messages were handed over; DeliveryError when the mailbox cannot be read."""
    if settings.imap_host:
        return _read_imap(settings, handle)
    if settings.maildir:
        return _read_maildir(settings.maildir, handle)
    raise DeliveryError(
        "no bounce mailbox is configured", "set [bounces] imap_host (with imap_user) or [bounces] maildir"
    )


def _read_maildir(path: Path, handle: Handler) -> int:
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise DeliveryError(f"{path} is not a Maildir (no cur/ and new/)", "check bounces.maildir")
    box = mailbox.Maildir(path, factory=None, create=False)
    count = 0
    try:
        for key in sorted(box.keys()):
            try:
                message = box[key]
            except KeyError:  # taken by another reader in the meantime
                continue
            if "S" in message.get_flags():
                continue
            handle(message.as_bytes())
            count += 1
            message.set_subdir("cur")
            message.add_flag("S")
            try:
                box[key] = message
            except KeyError:
                continue
    finally:
        box.close()
    return count


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _read_imap(settings: BouncesSettings, handle: Handler) -> int:
    where = f"{settings.imap_host}:{settings.imap_port}"
    context = _tls_context(settings.imap_verify)
    try:
        if settings.imap_mode == "ssl":
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                settings.imap_host, settings.imap_port, ssl_context=context, timeout=30
            )
        else:
            imap = imaplib.IMAP4(settings.imap_host, settings.imap_port, timeout=30)
            imap.starttls(context)
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(
            f"the certificate of the IMAP server {where} cannot be verified: {exc.verify_message}",
            "fix the server's certificate, or set bounces.imap_verify = false for a server you trust",
        ) from exc
    except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
        raise DeliveryError(
            f"cannot connect to the IMAP server {where}: {exc}", "check bounces.imap_host and imap_port"
        ) from exc
    try:
        try:
            imap.login(settings.imap_user, settings.imap_password)
        except imaplib.IMAP4.error as exc:
            raise DeliveryError(
                f"the IMAP server {where} refused the login of {settings.imap_user!r}",
                f"check bounces.imap_user and the password in ${settings.imap_password_env}",
            ) from exc
        status, _ = imap.select(_quoted(settings.imap_folder))
        if status != "OK":
            raise DeliveryError(
                f"the IMAP folder {settings.imap_folder!r} cannot be opened", "check bounces.imap_folder"
            )
        status, data = imap.uid("SEARCH", "UNSEEN")
        uids = data[0].split() if status == "OK" and data and data[0] else []
        count = 0
        for uid in uids:
            status, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in fetched if isinstance(part, tuple)), None) if status == "OK" else None
            if not isinstance(raw, bytes):
                continue
            handle(raw)
            count += 1
            imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        return count
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise DeliveryError(f"the IMAP connection to {where} broke: {exc}", "run `digest bounces` again") from exc
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def _quoted(folder: str) -> str:
    return folder if re.fullmatch(r"[A-Za-z0-9._/-]+", folder) else '"' + folder.replace('"', '\\"') + '"'
