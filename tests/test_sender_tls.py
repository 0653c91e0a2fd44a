"""SMTP over TLS against a real aiosmtpd server with a self-signed certificate: STARTTLS and implicit TLS,
certificate verification on by default, login, and errors that never show the password."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.config import SmtpSettings
from digest.errors import DeliveryError
from digest.sender.transports.smtp import SmtpTransport
from tests.support_smtp import MemoryHandler, free_port, make_message

USER, PASSWORD = "digest", "correct horse battery staple"


@dataclass
class TlsServer:
    port: int
    cert: Path
    handler: MemoryHandler


def _certificate(folder: Path) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(params=["starttls", "ssl"])
def tls_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, TlsServer]]:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, port = MemoryHandler(), free_port()
    options: dict[str, Any] = {"authenticator": _authenticator, "auth_require_tls": True}
    if request.param == "starttls":
        options.update(tls_context=context, require_starttls=True)
    else:  # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; implicit TLS is encrypted anyway
        options.update(ssl_context=context, auth_require_tls=False)
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield request.param, TlsServer(port, cert, handler)
    finally:
        controller.stop()


def transport(mode: str, server: TlsServer, **changes: Any) -> SmtpTransport:
    base = SmtpSettings(host="127.0.0.1", port=server.port, mode=mode, username=USER, password=PASSWORD, timeout=10)
    return SmtpTransport(SmtpSettings(**{**base.__dict__, **changes}))


def test_an_unknown_certificate_is_refused_by_default(tls_server: tuple[str, TlsServer]) -> None:
    mode, server = tls_server
    with pytest.raises(DeliveryError) as info:
        transport(mode, server).open()
    assert "cannot be verified" in str(info.value) and "smtp.verify" in str(info.value)
    assert server.handler.received == []


def test_a_trusted_certificate_delivers_with_login(
    tls_server: tuple[str, TlsServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    mode, server = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # the default context now trusts our CA
    t = transport(mode, server)
    t.open()
    result = t.send(make_message("2026-W47", "reader@example.com"))
    t.close()
    assert result.status == "sent", result.reply
    assert [r for m in server.handler.received for r in m.recipients] == ["reader@example.com"]


def test_verify_false_accepts_a_self_signed_certificate(tls_server: tuple[str, TlsServer]) -> None:
    mode, server = tls_server
    t = transport(mode, server, verify=False)
    t.open()
    assert t.send(make_message("2026-W47", "reader@example.com")).status == "sent"
    t.close()


def test_a_wrong_password_is_a_clear_error_without_the_password(tls_server: tuple[str, TlsServer]) -> None:
    mode, server = tls_server
    with pytest.raises(DeliveryError) as info:
        transport(mode, server, verify=False, password="wrong-secret-value").open()
    text = str(info.value)
    assert "refused the login of 'digest'" in text and "DIGEST_SMTP_PASSWORD" in text
    assert "wrong-secret-value" not in text and PASSWORD not in text
