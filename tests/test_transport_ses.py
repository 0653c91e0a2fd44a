"""Amazon SES as the transport and SES bounce/complaint events through SNS, against moto's standalone server
on 127.0.0.1 (`moto[server]`), which speaks the SES and SNS APIs: `digest send` through SES, a sender SES
refuses, the events URL, and SNS posting a bounce and a complaint to the real `digest serve`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from digest import pipeline
from digest.cli import main
from digest.config import load_settings
from digest.sender.ledger import Ledger
from tests.support_service import free_port, http_server_factory

__all__ = ["http_server_factory"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "site"
NOW = "2026-11-23T09:00:00+09:00"
SECRET = "a secret for the SES tests, long enough to sign"
ACTIVE = ["ml-only@example.org", "plain@example.net", "reader@example.com"]


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    boto3 = pytest.importorskip("boto3")
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto[server] is not installed: pip install -e '.[test]'")
    port = free_port()
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.1)
    client = boto3.client("ses", region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # fmt: skip
    client.verify_domain_identity(Domain="notes.example.org")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def site(tmp_path: Path, moto: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    target = tmp_path / "site"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("_digest", ".digest"))
    config = target / "digest.toml"
    text = config.read_text("utf-8").replace("[email]\n", '[email]\npublic_url = "https://notes.example.org/news/"\n')
    config.write_text(text + f'\n[ses]\nregion = "us-east-1"\nendpoint_url = "{moto}"\n', "utf-8")
    return target


def sent_by_moto(moto: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{moto}/moto-api/data.json") as answer:
        return list(json.load(answer)["ses"]["RawMessage"])


def invoke(site: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--site", str(site)], env={"DIGEST_NOW": NOW, "DIGEST_SECRET": SECRET})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_send_through_ses_once_each(site: Path, moto: str) -> None:
    before = len(sent_by_moto(moto))
    code, out, err = invoke(site, "send", "--week", "2026-W47")
    assert code == 0, out + err
    assert "delivered via Amazon SES us-east-1" in out
    raw = sent_by_moto(moto)[before:]
    to = sorted(m["destinations"][0] for m in raw)
    assert to == ACTIVE
    assert all("List-Unsubscribe-Post: List-Unsubscribe=One-Click" in m["raw_data"] for m in raw)
    code, out, _ = invoke(site, "send", "--week", "2026-W47")  # a rerun sends nothing
    assert code == 0 and len(sent_by_moto(moto)) == before + 3 and "3 had it already" in out


def test_a_sender_ses_refuses_stops_in_one_line_and_a_rerun_finishes(site: Path, moto: str) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace("digest@notes.example.org", "news@unverified.example"), "utf-8")
    before = len(sent_by_moto(moto))
    code, _, err = invoke(site, "send", "--week", "2026-W47")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "refuses to send from news@unverified.example" in err
    assert "verify the From domain" in err and len(sent_by_moto(moto)) == before
    import boto3

    boto3.client("ses", region_name="us-east-1", endpoint_url=moto).verify_domain_identity(Domain="unverified.example")
    code, out, err = invoke(site, "send", "--week", "2026-W47")
    assert code == 0, out + err
    assert sorted(m["destinations"][0] for m in sent_by_moto(moto)[before:]) == ACTIVE


def test_check_prints_the_events_url(site: Path) -> None:
    code, out, _ = invoke(site, "check", "--json")
    findings = {f["check"]: f for f in json.loads(out)}
    assert findings["transport"]["detail"].startswith("Amazon SES us-east-1")
    assert "https://notes.example.org/news/events/ses?token=" in findings["ses events"]["detail"]


def test_sns_posts_bounces_and_complaints_to_digest_serve(site: Path, moto: str, http_server_factory: Any) -> None:
    import boto3

    settings = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET})
    code, _, _ = invoke(site, "send", "--week", "2026-W47")  # the store knows the subscribers now
    assert code == 0
    store = pipeline.open_store(settings)
    server = http_server_factory(settings, Ledger(store), lambda: datetime.now(UTC))
    token = pipeline.provider_events_url(settings, datetime.now(UTC)).rsplit("token=", 1)[1]
    endpoint = f"{server.url}/events/ses?token={token}"  # the URL digest check prints, on 127.0.0.1
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto)
    topic = sns.create_topic(Name=f"ses-events-{free_port()}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
    events = [
        {"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bouncedRecipients": [
            {"emailAddress": "reader@example.com", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}},
        {"notificationType": "Complaint", "complaint": {"complainedRecipients": [
            {"emailAddress": "plain@example.net"}], "complaintFeedbackType": "abuse"}},
        {"notificationType": "Bounce", "bounce": {"bounceType": "Transient", "bouncedRecipients": [
            {"emailAddress": "ml-only@example.org"}]}},
    ]  # fmt: skip
    for event in events:
        sns.publish(TopicArn=topic, Message=json.dumps(event))
    book = pipeline.roster(settings, store)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = {a: (book.get(a, events=False) or None) for a in ACTIVE}
        if statuses["plain@example.net"] and statuses["plain@example.net"].status == "complained":  # type: ignore
            break
        time.sleep(0.1)
    assert book.get("reader@example.com", events=False).status == "bounced"  # type: ignore[union-attr]
    assert book.get("plain@example.net", events=False).status == "complained"  # type: ignore[union-attr]
    assert book.get("ml-only@example.org", events=False).status == "active"  # type: ignore[union-attr]  # one soft
    assert pipeline.suppressed(settings, store) >= {"reader@example.com", "plain@example.net"}
    # a forged token, and a post that is no SNS message
    assert httpx.post(server.url + "/events/ses?token=forged", content=b"{}").status_code == 400
    assert httpx.post(endpoint, content=b"not json").json()["kind"] == "ignored"


def test_a_subscription_is_confirmed_only_at_aws_or_the_configured_endpoint(site: Path, moto: str) -> None:
    settings = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET})
    now_at = datetime.now(UTC)
    token = pipeline.provider_events_url(settings, now_at).rsplit("token=", 1)[1]
    elsewhere = json.dumps({"Type": "SubscriptionConfirmation", "SubscribeURL": "http://127.0.0.1:9/evil"}).encode()
    post, _ = pipeline.provider_events(settings, token, elsewhere, now_at)
    assert post.kind == "ignored" and "not AWS's" in post.reason
    confirm = f"{moto}/?Action=ListTopics"  # the configured endpoint answers
    post, _ = pipeline.provider_events(
        settings, token, json.dumps({"Type": "SubscriptionConfirmation", "SubscribeURL": confirm}).encode(), now_at
    )
    assert post.kind == "confirm"
