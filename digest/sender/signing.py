"""DKIM signing (dkimpy) of finished message bytes.

The body differs per subscriber (the unsubscribe link), so each message is signed on its own;
this is the one expensive step of the hot path and only runs when a key is configured.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from digest.config import checks
from digest.errors import ConfigError

# Signed when present; the first six are what receivers and RFC 8058 care about.
SIGNED_HEADERS = (
    "From",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "To",
    "Reply-To",
    "List-Id",
    "MIME-Version",
    "Content-Type",
)


class DkimSigner:
    def __init__(self, key_path: Path, selector: str, domain: str, headers: tuple[str, ...]):
        key = checks.dkim_key(key_path, selector, domain)
        assert key is not None
        self.key = key
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        present = {h.lower() for h in headers}
        self.include = [h.lower().encode("ascii") for h in SIGNED_HEADERS if h.lower() in present]

    def sign(self, data: bytes) -> bytes:
        """The DKIM-Signature header line (with CRLF) to put in front of `data`."""
        try:
            header: bytes = dkim.sign(
                data,
                self.selector,
                self.domain,
                self.key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=self.include,
            )
        except dkim.DKIMException as exc:
            raise ConfigError(f"DKIM signing failed: {exc}", "check the DKIM key and domain") from exc
        return header
