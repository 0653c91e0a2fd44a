"""One error type per stage. A DigestError is a user's mistake or an outside failure that the
command line prints as one line (``file:line: message (hint)``) with exit code 1; anything else
escaping to the top is a bug."""

from __future__ import annotations


class DigestError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str = "", *, source: str = "", line: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.source = source
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(DigestError):
    """The digest config, a site config or the subscribers file is wrong."""


class CollectError(DigestError):
    """Posts could not be read (missing folder, --strict with skipped files)."""


class TemplateError(DigestError):
    """A template (built-in or override) failed to render."""


class DeliveryError(DigestError):
    """The mail could not be handed to the transport at all (not a per-recipient failure)."""


class LedgerError(DigestError):
    """The state database cannot be opened or is of an unknown version."""


class TokenError(DigestError):
    """A signed link (unsubscribe) is forged, damaged or too old."""
