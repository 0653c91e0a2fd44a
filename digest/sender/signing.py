"""DKIM for every message: which header fields are signed, and the signer made from the [email] keys.

The signatures are computed in dkimsign.py (OpenSSL's RSA and Ed25519 through `cryptography`, each
variant's body canonicalised once) and, for large sends, in helper processes (signpool.py).
"""

from __future__ import annotations

import os

from digest.config import EmailSettings
from digest.sender.dkimsign import ED25519, RSA, DkimKey, Signer, load_key
from digest.sender.signpool import SigningPool

# Signed when present. The first six are what receivers and RFC 8058 care about; the list headers and the
# bulk-mail markers are signed too, so nobody on the way can add or change them.
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
    "List-Archive",
    "List-Help",
    "Precedence",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
)


def dkim_keys(email: EmailSettings) -> list[DkimKey]:
    """The configured keys: RSA (email.dkim_key), then Ed25519 (email.dkim_ed25519_key) when set."""
    if email.dkim_key is None:
        return []
    keys = [load_key(email.dkim_key, email.dkim_selector, email.dkim_domain, RSA)]
    if email.dkim_ed25519_key is not None:
        keys.append(load_key(email.dkim_ed25519_key, email.dkim_ed25519_selector, email.dkim_domain, ED25519))
    return keys


def signing_processes(configured: int) -> int:
    """delivery.signing_processes: -1 ("auto") is one helper process per CPU when there are several (on one
    CPU a helper gains nothing); 0 signs in the sending process."""
    if configured >= 0:
        return configured
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cpus if cpus > 1 else 0


class DkimSigner(Signer):
    """A Signer for the configured keys, signing RSA in helper processes once a send is large enough."""

    def __init__(self, email: EmailSettings, timestamp: int, processes: int = -1) -> None:
        self.pool = SigningPool(signing_processes(processes))
        super().__init__(dkim_keys(email), SIGNED_HEADERS, timestamp, self.pool)

    def close(self) -> None:
        self.pool.close()
