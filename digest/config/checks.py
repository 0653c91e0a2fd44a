"""Checks made when the settings are loaded, so a mistake stops every command at once instead of the
weekly send a week later: the addresses and header values of [email], the subject template, the template
folder, the DKIM key, the folders, the database URL and the secret."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from digest.errors import ConfigError
from digest.text import ADDRESS, CONTROL

LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def header_value(value: str, key: str, source: str = "", section: str = "email") -> str:
    if CONTROL.search(value):
        raise ConfigError(
            f"{section}.{key} contains a line break or control character", "write it on one line", source=source
        )
    return value.strip()


# "Blog <news@example.com>" with no character that is special in a header's display name: read here. The
# email package (20 ms to import, at every start) reads the rest, as it reads every header it sends.
_PLAIN_MAILBOX = re.compile(r"(?:([^\x00-\x1f\"(),.:;<>@\[\\\]]*?)\s*)?<([^<>\s]+)>")


def single_address(value: str, key: str, source: str = "", section: str = "email") -> tuple[str, str]:
    """(header value, bare address) of a configured mailbox such as "Blog <news@example.com>"."""
    text = header_value(value, key, source, section)
    if ADDRESS.fullmatch(text):
        return text, text
    plain = _PLAIN_MAILBOX.fullmatch(text)
    if plain is not None and ADDRESS.fullmatch(plain.group(2)):
        return text, plain.group(2)
    from email.message import EmailMessage
    from email.policy import SMTP

    probe = EmailMessage(policy=SMTP)
    try:
        probe["From"] = header_value(value, key, source, section)
        addresses = probe["From"].addresses
    except (ValueError, IndexError) as exc:
        raise ConfigError(
            f"{section}.{key} = {value!r} is not one email address", 'write "Name <name@example.com>"', source=source
        ) from exc
    if len(addresses) != 1 or not ADDRESS.fullmatch(addresses[0].addr_spec):
        raise ConfigError(
            f"{section}.{key} = {value!r} is not one email address", 'write "Name <name@example.com>"', source=source
        )
    return value.strip(), addresses[0].addr_spec


def list_id(value: str, source: str = "") -> str:
    found = header_value(value, "list_id", source).strip("<>")
    if found and not LIST_ID.fullmatch(found):
        raise ConfigError(
            f"email.list_id = {found!r} is not a list id", 'use a dotted name like "news.example.com"', source=source
        )
    return found


def mailto(value: str, fallback: str, source: str = "") -> str:
    """The List-Unsubscribe mailto URL of `value` (an address), or of `fallback` (the From address)."""
    address = header_value(value, "unsubscribe_mailto", source).removeprefix("mailto:")
    if address and not ADDRESS.fullmatch(address):
        raise ConfigError(
            f"email.unsubscribe_mailto = {address!r} is not an address", "write one address", source=source
        )
    return "mailto:" + quote(address or fallback, safe="@!$'*+.-_~") + "?subject=unsubscribe"


def domain_of(address: str) -> str:
    text = address.strip()
    if not text:
        return ""
    plain = _PLAIN_MAILBOX.fullmatch(text)
    if ADDRESS.fullmatch(text) or (plain is not None and ADDRESS.fullmatch(plain.group(2))):
        return (plain.group(2) if plain is not None else text).rpartition("@")[2]
    from email.utils import parseaddr

    return parseaddr(address)[1].rpartition("@")[2]


def subject_template(source_text: str, source: str = "") -> None:
    """The subject is a Jinja2 template: a syntax error is found now, not at send time."""
    import jinja2

    try:
        jinja2.Environment().parse(source_text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"email.subject is not a valid template: {exc.message}", "fix the {{ … }} parts", source=source
        ) from exc


def template_folder(folder: Path | None, source: str = "") -> None:
    if folder is not None and not folder.is_dir():
        raise ConfigError(
            f"the template folder {folder} does not exist", "create it or remove output.templates", source=source
        )


def dkim_key(path: Path | None, selector: str, domain: str, source: str = "", kind: str = "rsa") -> bytes | None:
    """The bytes of a DKIM key file after checking it (read_dkim_key); None when DKIM is off."""
    return None if path is None else read_dkim_key(path, selector, domain, kind)


def read_dkim_key(path: Path, selector: str, domain: str, kind: str = "rsa") -> bytes:
    """The bytes of a DKIM key file after checking it holds a private key of `kind` (rsa: PEM; ed25519:
    PEM or the base64 of the 32-byte seed dkimpy's dknewkey writes); a ConfigError naming the file."""
    ed25519 = kind == "ed25519"
    if not selector or not domain:
        raise ConfigError(
            "DKIM needs a key, a selector and a domain",
            f"set email.{'dkim_ed25519_selector' if ed25519 else 'dkim_selector'} and email.dkim_domain",
            source=str(path),
        )
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the DKIM key: {exc.strerror}", "check email.dkim_key", source=str(path)
        ) from exc
    # only when DKIM is configured
    import base64

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ed25519 as ed
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    wanted = ed.Ed25519PrivateKey if ed25519 else rsa.RSAPrivateKey
    try:
        if ed25519 and b"-----BEGIN" not in key:
            if len(base64.b64decode(key.strip(), validate=True)) != 32:
                raise ValueError("not 32 bytes")
        elif not isinstance(load_pem_private_key(key, password=None), wanted):
            raise ValueError("another kind of key")
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        make = "openssl genpkey -algorithm ed25519" if ed25519 else "openssl genrsa 2048"
        raise ConfigError(
            f"the DKIM key is not a PEM {'Ed25519' if ed25519 else 'RSA'} private key",
            f"create one with `{make}`",
            source=str(path),
        ) from exc
    return key


def folder_is_not_a_file(path: Path, key: str, source: str = "") -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{key} {path} is a file, not a folder", f"remove the file or point {key} elsewhere", source=source
        )


def database_url(url: str, source: str = "") -> None:
    # a cheap shape check (SQLAlchemy itself is imported only by commands that open the database)
    if url and not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise ConfigError(
            f"state.database = {url!r} is not a database URL",
            "use sqlite:///path or postgresql+psycopg://user@host/db",
            source=source,
        )


# Secrets that appear in documentation and sample files: a token signed with one is a forged token.
PLACEHOLDER = re.compile(r"change.?me|replace.?me|your.?secret|secret.?here|^(secret|password|test|example|x+)$", re.I)
MIN_SECRET_BYTES = 32


def secret(value: str, variable: str) -> str:
    """A signing key from the environment: refused when short or a known placeholder."""
    if not value:
        return value
    if len(value.encode("utf-8")) < MIN_SECRET_BYTES or PLACEHOLDER.search(value.strip()):
        raise ConfigError(
            f"{variable} is too weak to sign links (at least {MIN_SECRET_BYTES} bytes, not a placeholder)",
            "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return value
