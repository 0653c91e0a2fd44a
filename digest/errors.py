"""One error type per stage. A DigestError is a user's mistake or an outside failure that the
command line prints as one line (``file:line: message (hint)``) with exit code 1 (2 for wrong usage);
anything else escaping to the top is a bug. A `transient` error (a server or database that is down, a
full disk) may go away by itself: the weekly service retries it with back-off instead of giving up."""

from __future__ import annotations


class DigestError(Exception):
    exit_code = 1
    transient = False

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        source: str = "",
        line: int | None = None,
        transient: bool | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.source = source
        self.line = line
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(DigestError):
    """A command was given a wrong argument (a week that does not exist, --until without --since…)."""

    exit_code = 2


class ConfigError(DigestError):
    """The digest config, a site config or the subscribers file is wrong."""


class CollectError(DigestError):
    """Posts could not be read (missing folder, --strict with skipped files)."""


class TemplateError(DigestError):
    """A template (built-in or override) failed to render."""


class OutputError(DigestError):
    """The feeds, the archive or the preview files cannot be written."""


class DeliveryError(DigestError):
    """The mail could not be handed to the transport at all (not a per-recipient failure): a server that
    is down or refuses the login. Transient by default: the service tries again later."""

    transient = True


class DeliverabilityError(DeliveryError):
    """Receivers refuse the mail as unauthenticated (Gmail's 5.7.26, Outlook.com's 5.7.515), or DNS shows
    they will (DKIM or DMARC broken, found before a weekly send): nothing is sent until SPF, DKIM and DMARC
    are fixed. Transient: the service tries again later, since the fix is in DNS."""


class LedgerError(DigestError):
    """The state database cannot be opened, failed in the middle (down, full disk), or is of an unknown
    version. Failures of a running database are transient; a wrong schema version is not."""


class TokenError(DigestError):
    """A signed link (unsubscribe) is forged, damaged or too old."""


class TokenExpired(TokenError):
    """A signed link that is authentic but too old: `address` is the one it was made for (its page can be
    in that reader's language)."""

    address: str = ""
