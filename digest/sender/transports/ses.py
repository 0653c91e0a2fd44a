"""Amazon SES through its v2 API (SendEmail with the raw message), with boto3. Credentials come from the
usual AWS chain (environment, profile, instance role). One client per worker thread.

SES takes no idempotency key, so the ledger's gate is what bounds duplicates: the API call is the point
of no return, and it is made only once the previous message's outcome is recorded.
Replies: throttling and service trouble are deferred (retried with back-off); a message SES rejects fails
for that address; a sender SES does not allow (unverified domain, account paused) stops the run with one
line that says what to fix, instead of failing every address in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from digest.config import Settings
from digest.errors import DeliveryError
from digest.models import OutgoingMessage
from digest.sender.outcome import DEFERRED, FAILED, SENT, SendResult

# error codes of the SES v2 API (and botocore's own for the connection)
DEFER = {"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException",
         "ServiceUnavailable", "InternalFailure", "RequestTimeout"}  # fmt: skip
STOP = {"AccountSuspendedException", "SendingPausedException", "MailFromDomainNotVerifiedException",
        "NotFoundException", "AccessDeniedException", "UnrecognizedClientException",
        "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredTokenException"}  # fmt: skip


class SesTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.ses
        self.sender = parseaddr(settings.email.sender)[1]
        self._client: Any = None

    @property
    def where(self) -> str:
        return f"Amazon SES {self.settings.region}" + (
            f" at {self.settings.endpoint_url}" if self.settings.endpoint_url else ""
        )

    def open(self) -> None:
        if self._client is not None:
            return
        try:
            import boto3  # only when SES is the transport
            from botocore.config import Config
        except ImportError as exc:
            raise DeliveryError("Amazon SES needs boto3", "pip install 'digest[ses]'") from exc
        options: dict[str, Any] = {
            "region_name": self.settings.region,
            "config": Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30),
        }
        if self.settings.endpoint_url:
            options["endpoint_url"] = self.settings.endpoint_url
        try:
            self._client = boto3.client("sesv2", **options)
        except Exception as exc:  # botocore raises its own errors for a missing region, bad config files
            raise DeliveryError(f"cannot use {self.where}: {exc}", "check [ses] and the AWS credentials") from exc

    def send(
        self, msg: OutgoingMessage, gate: Callable[[], None] = lambda: None, then: OutgoingMessage | None = None
    ) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        self.open()
        request: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [msg.recipient]},
            "Content": {"Raw": {"Data": msg.data}},
        }
        if self.settings.configuration_set:
            request["ConfigurationSetName"] = self.settings.configuration_set
        gate()
        try:
            answer = self._client.send_email(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, text = str(error.get("Code", "")), str(error.get("Message", ""))
            if code in STOP or (code == "MessageRejected" and "authority to send" in text.lower()):
                raise DeliveryError(
                    f"{self.where} refuses to send from {self.sender}: {code}: {text}",
                    "verify the From domain in SES and check the account's sending status and credentials",
                ) from exc
            status = DEFERRED if code in DEFER else FAILED
            return SendResult(status, 0, f"SES {code}: {text}"[:1000], msg.message_id)
        except BotoCoreError as exc:  # no connection, a timeout: the message may not have arrived
            return SendResult(DEFERRED, 0, f"SES connection error: {exc}"[:1000], msg.message_id)
        return SendResult(SENT, 250, f"SES message id {answer.get('MessageId', '')}", msg.message_id)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
