"""`digest doctor` against a real DNS server on 127.0.0.1 (dnslib) serving a zone that is right, then zones
with each mistake; the one-click endpoint against the real `digest serve`; the check before each weekly
send, which refuses to send while DKIM or DMARC is broken."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from digest import pipeline, scheduler
from digest.cli import main
from digest.config import Settings, load_settings
from digest.errors import DeliverabilityError
from digest.models import Subscriber
from digest.records import Finding
from digest.sender.dkimsign import ED25519, load_key
from digest.sender.dnscheck import Dmarc, Identity, dmarc_alignment
from digest.sender.doctor import bulk_volume
from digest.sender.ledger import Ledger
from digest.sender.probe import PROBE_ADDRESS, probe_unsubscribe
from digest.sender.suppressions import Suppressions
from digest.sender.tokens import make_token, unsubscribe_url
from digest.server import create_app, uvicorn_config
from tests.conftest import state_env
from tests.support_dns import DnsServer, Zone, dns_server
from tests.support_service import SECRET, Mailbox, free_port, http_server_factory, smtp_box, write

__all__ = ["dns_server", "http_server_factory", "smtp_box"]  # fixtures

DOMAIN = "example.com"
RELAY = "relay.example.net"
RELAY_IP = "192.0.2.10"
READERS = ["kim@example.org", "lee@gmail.com", "park@outlook.com"]


def pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("doctor-keys")
    found = {}
    for name in ("dkim", "other"):
        found[name] = folder / f"{name}.pem"
        found[name].write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    found["ed25519"] = folder / "ed25519.pem"
    found["ed25519"].write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    return found


def write_world(root: Path, dns: DnsServer, key: Path, smtp: str, extra: str = "") -> Path:
    """A site with last week's post, three readers, DKIM, SMTP and [doctor] pointing at the test DNS."""
    now_at = datetime.now(UTC)
    (root / "posts").mkdir(parents=True, exist_ok=True)
    write(root / "subscribers.yaml", "subscribers:\n" + "".join(f"  - email: {r}\n" for r in READERS))
    config = write(
        root / "digest.toml",
        f"""[site]
title = "Doctor's Weekly"
url = "https://{DOMAIN}/"
source = ["posts"]
timezone = "UTC"

[output]
dir = "out"

[email]
from = "Doctor's Weekly <news@{DOMAIN}>"
public_url = "https://{DOMAIN}/newsletter/"
dkim_key = "{key}"
dkim_selector = "s1"

[subscribers]
file = "subscribers.yaml"

[state]
dir = "state"

[delivery]
connections = 1

{smtp}
{dns.toml()}{extra}
""",
    )
    settings = load_settings(config, env={**state_env(), "DIGEST_SECRET": SECRET})
    # the week the service sends now: that of the last scheduled time
    week = scheduler.job_week(settings, scheduler.runs_between(settings, now_at - timedelta(days=8), now_at)[-1])
    post_at = week.start_at + timedelta(days=2)
    write(
        root / "posts" / f"{post_at:%Y-%m-%d}-checkup.md",
        f"---\ntitle: A check-up\ndate: {post_at.isoformat(sep=' ')}\n---\n\nThe post of last week.\n",
    )
    return config


def right_zone(zone: Zone, key: Path) -> None:
    published = load_key(key, "s1", DOMAIN)
    zone.txt(DOMAIN, f"v=spf1 ip4:{RELAY_IP} -all", "google-site-verification=abc")
    zone.a(RELAY, RELAY_IP)
    zone.txt(f"_dmarc.{DOMAIN}", f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{DOMAIN}")
    zone.txt(published.record_name, published.record)
    zone.mx(DOMAIN, f"mx.{DOMAIN}")
    zone.a(f"mx.{DOMAIN}", "192.0.2.25")


@dataclass
class World:
    settings: Settings
    zone: Zone
    url: str  # digest serve
    ledger: Ledger
    keys: dict[str, Path]

    def doctor(self, **email: Any) -> dict[str, Finding]:
        settings = replace(self.settings, email=replace(self.settings.email, **email)) if email else self.settings
        findings = pipeline.doctor(settings, datetime.now(UTC))
        assert len({f.check for f in findings}) == len(findings), [f.check for f in findings]
        return {f.check: f for f in findings}


@pytest.fixture
def world(tmp_path: Path, dns_server: DnsServer, key_files: dict[str, Path], http_server_factory: Any) -> World:
    config = write_world(tmp_path, dns_server, key_files["dkim"], f'[smtp]\nhost = "{RELAY}"\n')
    settings = load_settings(config, env={**state_env(), "DIGEST_SECRET": SECRET})
    ledger = Ledger(settings.db_url)
    server = http_server_factory(settings, ledger, lambda: datetime.now(UTC))
    settings = replace(settings, email=replace(settings.email, public_url=server.url + "/"))
    right_zone(dns_server.zone, key_files["dkim"])
    return World(settings, dns_server.zone, server.url, ledger, key_files)


def levels(findings: dict[str, Finding]) -> dict[str, str]:
    return {name: f.level for name, f in findings.items()}


def test_a_zone_that_is_right_passes_every_check(world: World) -> None:
    found = world.doctor()
    assert levels(found) == {
        "spf": "ok",
        "spf relay": "ok",
        "dmarc": "ok",
        "dmarc alignment": "ok",
        "dkim record": "ok",
        "mx unsubscribe": "ok",
        "mx bounces": "ok",
        "mta-sts": "ok",
        "tls-rpt": "ok",
        "bimi": "ok",
        "message dkim": "ok",
        "message headers": "ok",
        "message size": "ok",
        "unsubscribe post": "ok",
        "unsubscribe get": "ok",
        "volume": "ok",
    }, found
    assert f"passes for {RELAY_IP}" in found["spf relay"].detail
    assert "p=quarantine" in found["dmarc"].detail and "(0 of 10 DNS lookups)" in found["spf"].detail
    assert "covers List-Unsubscribe and List-Unsubscribe-Post" in found["message dkim"].detail
    assert "not published" in found["bimi"].detail
    assert found["volume"].detail.startswith("2 active addresses at Gmail, Outlook and Yahoo (Gmail 1, Outlook 1)")
    # every question went to the test server, and the probe recorded nothing
    assert (f"s1._domainkey.{DOMAIN}", "TXT") in world.zone.asked and (RELAY, "A") in world.zone.asked
    assert Suppressions(world.ledger.store).all() == set()


def no_spf(w: World) -> None:
    w.zone.drop(DOMAIN, "TXT").txt(DOMAIN, "google-site-verification=abc")


def spf_without_the_relay(w: World) -> None:
    w.zone.drop(DOMAIN, "TXT").txt(DOMAIN, "v=spf1 ip4:198.51.100.7 include:_spf.mailer.test ~all")
    w.zone.txt("_spf.mailer.test", "v=spf1 ip4:203.0.113.0/24 -all")


def too_many_spf_lookups(w: World) -> None:
    includes = " ".join(f"include:s{n}.spf.test" for n in range(11))
    w.zone.drop(DOMAIN, "TXT").txt(DOMAIN, f"v=spf1 {includes} ip4:{RELAY_IP} -all")
    for n in range(11):
        w.zone.txt(f"s{n}.spf.test", "v=spf1 -all")


def spf_that_does_not_parse(w: World) -> None:
    w.zone.drop(DOMAIN, "TXT").txt(DOMAIN, f"v=spf1 ip4:{RELAY_IP} ip4:300.1.1.1 -all")


def two_spf_records(w: World) -> None:
    w.zone.txt(DOMAIN, "v=spf1 -all")


def no_dmarc(w: World) -> None:
    w.zone.drop(f"_dmarc.{DOMAIN}")


def dmarc_that_is_wrong(w: World) -> None:
    w.zone.drop(f"_dmarc.{DOMAIN}").txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=sometimes")


def dkim_record_of_another_key(w: World) -> None:
    other = load_key(w.keys["other"], "s1", DOMAIN)
    w.zone.drop(other.record_name).txt(other.record_name, other.record)


def no_dkim_record(w: World) -> None:
    w.zone.drop(f"s1._domainkey.{DOMAIN}")


def revoked_dkim_record(w: World) -> None:
    w.zone.drop(f"s1._domainkey.{DOMAIN}").txt(f"s1._domainkey.{DOMAIN}", "v=DKIM1; k=rsa; p=")


def null_mx(w: World) -> None:
    w.zone.drop(DOMAIN, "MX").add(DOMAIN, "MX", __import__("dnslib").MX(".", 0))


# (mistake, the check that fails, what its line says, the other checks that fail with it)
MISTAKES = [
    (no_spf, "spf", "no SPF record at example.com", {"spf relay"}),
    (spf_without_the_relay, "spf relay", f"gives softfail for {RELAY_IP}", set()),
    (too_many_spf_lookups, "spf", "needs 11 DNS lookups (at most 10)", {"spf relay"}),
    (spf_that_does_not_parse, "spf", "does not parse", {"spf relay"}),
    (two_spf_records, "spf", "several SPF records", {"spf relay"}),
    (no_dmarc, "dmarc", "no DMARC record for example.com", set()),
    (dmarc_that_is_wrong, "dmarc", "is wrong", set()),
    (dkim_record_of_another_key, "dkim record", "holds another key", {"message dkim"}),
    (no_dkim_record, "dkim record", "no DKIM key at s1._domainkey.example.com", {"message dkim"}),
    (revoked_dkim_record, "dkim record", "revoked", {"message dkim"}),
    (null_mx, "mx bounces", "null MX", {"mx unsubscribe"}),
]


@pytest.mark.parametrize(("mistake", "check", "needle", "also"), MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
def test_each_mistake_fails_its_check_with_the_fix(
    world: World, mistake: Callable[[World], None], check: str, needle: str, also: set[str]
) -> None:
    mistake(world)
    found = world.doctor()
    failed = {name for name, f in found.items() if f.level == "fail"}
    assert failed == {check} | also, found
    assert needle in found[check].detail, found[check]
    assert found[check].fix and "\n" not in found[check].detail + found[check].fix


def test_the_fix_for_a_missing_dkim_record_is_the_record_to_publish(world: World) -> None:
    no_dkim_record(world)
    fix = world.doctor()["dkim record"].fix
    record = load_key(world.keys["dkim"], "s1", DOMAIN).record
    assert fix == f'publish a TXT record at s1._domainkey.{DOMAIN}: "{record}"'


def test_a_dkim_domain_outside_the_from_domain_is_a_warning_while_spf_aligns(world: World) -> None:
    other = load_key(world.keys["dkim"], "s1", "esp.example.net")
    world.zone.txt(other.record_name, other.record)
    found = world.doctor(dkim_domain="esp.example.net")
    assert found["dmarc alignment"].level == "warn"
    assert "d=esp.example.net does not align" in found["dmarc alignment"].detail
    assert found["dmarc alignment"].fix == f"set email.dkim_domain to {DOMAIN} (and publish its key there)"
    assert found["dkim record"].level == found["message dkim"].level == "ok"


def test_dmarc_fails_when_neither_dkim_nor_the_return_path_aligns(world: World) -> None:
    """A mailing service's domain for both the DKIM d= and the bounces: DMARC fails for every message."""
    other = load_key(world.keys["dkim"], "s1", "esp.example.net")
    world.zone.txt(other.record_name, other.record).txt("esp.example.net", f"v=spf1 ip4:{RELAY_IP} -all")
    world.zone.mx("esp.example.net", f"mx.{DOMAIN}")
    bounces = replace(world.settings.bounces, return_path="bounces@esp.example.net")
    world.settings = replace(world.settings, bounces=bounces)
    found = world.doctor(dkim_domain="esp.example.net")
    failed = {name for name, f in found.items() if f.level == "fail"}
    assert failed == {"dmarc alignment"}, found
    assert "Return-Path esp.example.net does not align" in found["dmarc alignment"].detail
    # SPF and the bounce MX are checked where bounces go
    assert found["spf"].detail.startswith("esp.example.net:") and "esp.example.net" in found["mx bounces"].detail


def test_an_ed25519_key_is_checked_next_to_the_rsa_one(world: World) -> None:
    ed = {"dkim_ed25519_key": world.keys["ed25519"], "dkim_ed25519_selector": "s1e"}
    found = world.doctor(**ed)
    assert (
        found["dkim record ed25519"].level == "fail"
        and "no DKIM key at s1e._domainkey" in found["dkim record ed25519"].detail
    )
    assert found["message dkim ed25519"].level == "fail" and found["message dkim"].level == "ok"
    key = load_key(world.keys["ed25519"], "s1e", DOMAIN, ED25519)
    world.zone.txt(key.record_name, key.record)
    found = world.doctor(**ed)
    assert found["dkim record ed25519"].level == found["message dkim ed25519"].level == "ok"
    assert "ed25519-sha256 d=example.com s=s1e verifies" in found["message dkim ed25519"].detail


def test_an_optional_record_is_shown_when_published(world: World) -> None:
    world.zone.txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=20240101")
    world.zone.txt(f"_smtp._tls.{DOMAIN}", f"v=TLSRPTv1; rua=mailto:tls@{DOMAIN}")
    found = world.doctor()
    assert found["mta-sts"].detail.endswith("v=STSv1; id=20240101")
    assert "v=TLSRPTv1" in found["tls-rpt"].detail


def test_a_dns_server_that_does_not_answer_is_a_warning_not_a_failure(world: World) -> None:
    silent = replace(world.settings.doctor, port=free_port(), timeout=0.5)
    settings = replace(world.settings, doctor=silent)
    findings = {f.check: f for f in pipeline.doctor(settings, datetime.now(UTC))}
    dns_checks = ["spf", "spf relay", "dmarc", "dkim record", "mx unsubscribe", "mx bounces", "message dkim"]
    assert {name: findings[name].level for name in dns_checks} == dict.fromkeys(dns_checks, "warn")
    assert all("could not check" in findings[name].detail for name in dns_checks)
    assert [f.check for f in findings.values() if f.level == "fail"] == []


def test_a_relay_on_this_machine_cannot_be_checked_unless_its_addresses_are_given(world: World) -> None:
    local = replace(world.settings, smtp=replace(world.settings.smtp, host="127.0.0.1"))
    found = {f.check: f for f in pipeline.doctor(local, datetime.now(UTC))}
    assert found["spf relay"].level == "warn" and "doctor.sending_addresses" in found["spf relay"].fix
    given = replace(local, doctor=replace(local.doctor, sending_addresses=(RELAY_IP, "198.51.100.9")))
    found = {f.check: f for f in pipeline.doctor(given, datetime.now(UTC))}
    assert found["spf relay"].level == "fail" and "198.51.100.9" in found["spf relay"].detail


def test_a_size_limit_no_message_fits_is_a_finding(world: World) -> None:
    small = replace(world.settings, output=replace(world.settings.output, max_html_bytes=2000))
    found = {f.check: f for f in pipeline.doctor(small, datetime.now(UTC))}
    assert found["message"].level == "fail" and "output.max_html_kb = 2" in found["message"].detail
    assert "message size" not in found and found["spf"].level == "ok"  # the other checks still ran


def test_mail_through_ses_leaves_spf_to_the_provider(world: World) -> None:
    ses = replace(world.settings, delivery=replace(world.settings.delivery, transport="ses"))
    found = {f.check: f for f in pipeline.doctor(ses, datetime.now(UTC))}
    assert found["spf relay"].level == "ok" and "Amazon SES" in found["spf relay"].detail
    assert (RELAY, "A") not in world.zone.asked


def test_an_oversized_message_fails_the_size_check(world: World) -> None:
    """The templater keeps the HTML under output.max_html_kb, so the check guards a message that grew
    on the way (a relay, a replaced template): fed one over the limit, it fails."""
    from email import message_from_bytes, policy

    from digest.sender.doctor import check_size
    from digest.sender.message import MessageFactory
    from digest.templater import render_email

    assert world.doctor()["message size"].detail.startswith("HTML ")
    issue = pipeline.sample_issue(world.settings, scheduler.job_week(world.settings, datetime.now(UTC)))
    reader = pipeline.EXAMPLE_SUBSCRIBER
    factory = MessageFactory({reader.variant: render_email(issue, world.settings)}, world.settings, datetime.now(UTC))
    data = factory.build(reader).data
    parsed = message_from_bytes(data, policy=policy.default)
    small = replace(world.settings, output=replace(world.settings.output, max_html_bytes=2000))
    assert check_size(parsed, data, world.settings, summarized=False).level == "ok"  # type: ignore[arg-type]
    finding = check_size(parsed, data, small, summarized=True)  # type: ignore[arg-type]
    assert finding.level == "fail" and "Gmail clips above 2 KB" in finding.detail and "summaries" in finding.detail


def test_without_a_dkim_key_the_doctor_says_so_and_checks_the_rest(world: World) -> None:
    found = world.doctor(dkim_key=None)
    assert found["dkim record"].level == found["message dkim"].level == "warn"
    assert found["dmarc alignment"].level == "warn" and "not DKIM-signed" in found["dmarc alignment"].detail


def test_a_site_without_posts_checks_a_sample_message(world: World) -> None:
    for post in (world.settings.site.root / "posts").iterdir():
        post.unlink()
    found = world.doctor()
    assert found["message dkim"].level == found["message headers"].level == "ok"


# -- alignment, every branch --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_domain", "dkim_domain", "envelope", "adkim", "aspf", "level", "needle"),
    [
        ("example.com", "example.com", "example.com", "r", "r", "ok", "aligns with From"),
        ("news.example.com", "example.com", "news.example.com", "r", "r", "ok", "(relaxed)"),
        ("news.example.com", "example.com", "news.example.com", "s", "r", "warn", "which forwarding breaks"),
        ("news.example.com", "example.com", "bounce.example.com", "s", "s", "fail", "DMARC fails for every message"),
        ("example.com", "example.net", "bounces.example.org", "r", "r", "fail", "does not align"),
        ("example.co.uk", "mail.example.co.uk", "example.co.uk", "r", "s", "ok", "aligns"),
        ("example.co.uk", "other.co.uk", "example.co.uk", "r", "s", "warn", "d=other.co.uk does not align"),
        ("example.com", "", "example.com", "r", "r", "warn", "not DKIM-signed"),
        ("example.com", "", "esp.example.net", "r", "r", "fail", "not DKIM-signed"),
    ],
)
def test_dmarc_alignment(
    key_files: dict[str, Path],
    from_domain: str,
    dkim_domain: str,
    envelope: str,
    adkim: str,
    aspf: str,
    level: str,
    needle: str,
) -> None:
    keys = (load_key(key_files["dkim"], "s1", dkim_domain),) if dkim_domain else ()
    who = Identity(from_domain, envelope, keys, from_domain, RELAY)
    found = dmarc_alignment(who, Dmarc("v=DMARC1; p=reject", from_domain, "reject", adkim, aspf))
    assert (found.level, needle in found.detail) == (level, True), found


# -- volume ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "level"),
    [
        ({"gmail.com": 5000}, "ok"),
        ({"gmail.com": 5001}, "warn"),
        ({"gmail.com": 2000, "hotmail.com": 2000, "yahoo.com": 1001}, "warn"),
        ({"example.org": 9000, "gmail.com": 10}, "ok"),
        ({"GMail.com": 5001}, "warn"),
    ],
)
def test_volume_at_the_big_providers(counts: dict[str, int], level: str) -> None:
    subscribers = [Subscriber(f"u{n}@{domain}") for domain, count in counts.items() for n in range(count)]
    assert bulk_volume(subscribers, set()).level == level


def test_volume_counts_only_who_gets_mail() -> None:
    subscribers = [Subscriber(f"u{n}@gmail.com") for n in range(5003)]
    subscribers += [Subscriber("sleepy@gmail.com", active=False)]
    assert bulk_volume(subscribers, set()).level == "warn"
    gone = {"u0@gmail.com", "u1@gmail.com", "u2@gmail.com"}
    found = bulk_volume(subscribers, gone)
    assert found.level == "ok" and "5,000 active" in found.detail and "Gmail 5,000" in found.detail


def test_volume_reads_the_store_without_writing_to_it(world: World) -> None:
    """The file's readers count until the store knows better: a bounced Gmail address gets nothing."""
    from digest.models import Status
    from digest.sender.roster import Roster

    assert world.doctor()["volume"].detail.startswith("2 active")
    assert Roster(world.ledger.store).for_send(datetime.now(UTC))[0] == ()  # the doctor synced nothing
    pipeline.sync_subscribers(world.settings, datetime.now(UTC), world.ledger.store)
    Roster(world.ledger.store).set_status("lee@gmail.com", Status.BOUNCED, "5.1.1", datetime.now(UTC))
    assert world.doctor()["volume"].detail.startswith("1 active addresses at Gmail, Outlook and Yahoo (Outlook 1)")


# -- the endpoint -----------------------------------------------------------------------------------


def probe_url(settings: Settings, base: str, secret: str = SECRET) -> str:
    return unsubscribe_url(base, make_token(secret, PROBE_ADDRESS, datetime.now(UTC)))


def test_a_real_post_of_the_probe_records_nothing(world: World) -> None:
    import httpx

    response = httpx.post(
        probe_url(world.settings, world.url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and "location" not in response.headers
    assert Suppressions(world.ledger.store).all() == set()
    # the very same request for a subscriber records the unsubscribe
    token = make_token(SECRET, READERS[0], datetime.now(UTC))
    httpx.post(unsubscribe_url(world.url, token), content=b"List-Unsubscribe=One-Click")
    assert Suppressions(world.ledger.store).all() == {READERS[0]}


def test_a_server_with_another_secret_fails_the_probe(world: World) -> None:
    url = probe_url(world.settings, world.url, "another secret, also long enough to sign")
    found = {f.check: f for f in probe_unsubscribe(url)}
    assert found["unsubscribe post"].level == "fail" and "400" in found["unsubscribe post"].detail
    assert "DIGEST_SECRET" in found["unsubscribe post"].fix


def test_nothing_listening_fails_the_probe() -> None:
    found = probe_unsubscribe(f"http://127.0.0.1:{free_port()}/unsubscribe?token=x", timeout=2)
    assert [(f.check, f.level) for f in found] == [("unsubscribe post", "fail")]
    assert "digest serve" in found[0].fix


class Misconfigured(http.server.BaseHTTPRequestHandler):
    """A front server that redirects the POST (http to https, a trailing slash) and unsubscribes on GET."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(301)
        self.send_header("Location", "https://example.com" + self.path)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        body = b"<p>You are unsubscribed.</p>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def misconfigured() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misconfigured)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_redirect_and_a_get_that_unsubscribes_fail_the_probe(misconfigured: str) -> None:
    found = {f.check: f for f in probe_unsubscribe(misconfigured + "/unsubscribe?token=x")}
    assert found["unsubscribe post"].level == "fail" and "301" in found["unsubscribe post"].detail
    assert found["unsubscribe get"].level == "fail" and "confirmation form" in found["unsubscribe get"].detail


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(pem(key))
    return cert_file, key_file


def test_tls_must_be_valid(world: World, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = uvicorn_config(world.settings, create_app(world.settings, world.ledger.store, lambda: datetime.now(UTC)),
                            host="127.0.0.1", port=port)  # fmt: skip
    config.ssl_certfile, config.ssl_keyfile = str(cert), str(key)
    config.load()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.02)
        url = probe_url(world.settings, f"https://127.0.0.1:{port}")
        untrusted = {f.check: f for f in probe_unsubscribe(url)}
        assert untrusted["unsubscribe post"].level == "fail"
        assert "TLS certificate" in untrusted["unsubscribe post"].detail
        trusted = {f.check: f for f in probe_unsubscribe(url, context=ssl.create_default_context(cafile=str(cert)))}
        assert trusted["unsubscribe post"].level == "ok" and "valid TLS" in trusted["unsubscribe post"].detail
        assert trusted["unsubscribe get"].level == "ok"
    finally:
        server.should_exit = True
        thread.join(10)


def test_plain_http_to_another_host_is_a_warning() -> None:
    found = probe_unsubscribe(f"http://localhost.invalid:{free_port()}/unsubscribe?token=x", timeout=1)
    assert found[0].check == "unsubscribe https" and found[0].level == "warn"


# -- the command ---------------------------------------------------------------------------------------


def test_digest_doctor_prints_one_line_per_check_and_exits_1_on_a_failure(world: World) -> None:
    config = world.settings.config_file
    assert config is not None
    text = config.read_text("utf-8").replace(f"https://{DOMAIN}/newsletter/", world.url + "/")
    config.write_text(text, "utf-8")
    env = {"DIGEST_SECRET": SECRET}
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 16 and all(line.startswith("ok") for line in lines)
    no_dmarc(world)
    result = CliRunner().invoke(main, ["doctor", "--config", str(config), "--json"], env=env)
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r for r in rows if r["level"] == "fail"] == [
        {
            "check": "dmarc",
            "level": "fail",
            "detail": rows[2]["detail"],
            "fix": f'publish a TXT record at _dmarc.{DOMAIN}: "v=DMARC1; p=none; rua=mailto:<you>"',
        }
    ]


# -- before each weekly send ---------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path, dns_server: DnsServer, key_files: dict[str, Path], smtp_box: Mailbox) -> World:
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_box.port}\nmode = "plain"\n'
    schedule = "\n[schedule]\nmisfire_grace_hours = 1440\nresume_days = 10\n"  # the last Monday may be 7 days ago
    config = write_world(tmp_path, dns_server, key_files["dkim"], smtp, schedule)
    settings = load_settings(config, env={**state_env(), "DIGEST_SECRET": SECRET})
    # the one-click endpoint is not running here: a failure the check logs, never one that stops a send
    settings = replace(settings, email=replace(settings.email, public_url=f"http://127.0.0.1:{free_port()}/"))
    right_zone(dns_server.zone, key_files["dkim"])
    return World(settings, dns_server.zone, "", Ledger(settings.db_url), key_files)


@pytest.mark.parametrize("mistake", [dkim_record_of_another_key, no_dmarc], ids=lambda f: f.__name__)
def test_the_service_does_not_send_while_dkim_or_dmarc_is_broken(
    service: World, smtp_box: Mailbox, mistake: Callable[[World], None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="digest.scheduler")
    mistake(service)
    now_at = datetime.now(UTC)
    [step] = scheduler.tick(service.settings, clock=lambda: now_at)
    assert isinstance(step.error, DeliverabilityError) and "not sending" in str(step.error)
    assert step.cycle is not None and step.cycle.state == "open" and step.cycle.next_try_at is not None
    assert smtp_box.recipients() == []
    [line] = [m for r in caplog.records if r.name == "digest.scheduler" and "not sending" in (m := r.getMessage())]
    assert "next try" in line and "\n" not in line
    right_zone(service.zone.drop(f"s1._domainkey.{DOMAIN}").drop(f"_dmarc.{DOMAIN}").drop(DOMAIN), service.keys["dkim"])
    [again] = scheduler.tick(service.settings, clock=lambda: step.cycle.next_try_at)  # type: ignore[union-attr]
    assert again.error is None and again.cycle is not None and again.cycle.state == "done"
    assert Counter(smtp_box.recipients()) == Counter(READERS)


def test_a_missing_ed25519_record_is_logged_and_does_not_stop_the_send(
    service: World, smtp_box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The RSA signature next to it still passes: receivers accept the mail."""
    caplog.set_level("WARNING", logger="digest.doctor")
    email = replace(service.settings.email, dkim_ed25519_key=service.keys["ed25519"], dkim_ed25519_selector="s1e")
    [step] = scheduler.tick(replace(service.settings, email=email), clock=lambda: datetime.now(UTC))
    assert step.error is None and sorted(smtp_box.recipients()) == sorted(READERS)
    assert any("dkim record ed25519" in r.getMessage() for r in caplog.records if r.name == "digest.doctor")


def test_the_check_can_be_turned_off(service: World, smtp_box: Mailbox) -> None:
    no_dmarc(service)
    settings = replace(service.settings, doctor=replace(service.settings.doctor, before_send="off"))
    [step] = scheduler.tick(settings, clock=lambda: datetime.now(UTC))
    assert step.error is None and sorted(smtp_box.recipients()) == sorted(READERS)


def test_without_dkim_the_automatic_check_asks_no_dns(service: World, smtp_box: Mailbox) -> None:
    settings = replace(service.settings, email=replace(service.settings.email, dkim_key=None))
    [step] = scheduler.tick(settings, clock=lambda: datetime.now(UTC))
    assert step.error is None and sorted(smtp_box.recipients()) == sorted(READERS)
    assert service.zone.asked == []


def test_a_lookup_that_fails_does_not_stop_the_send(service: World, smtp_box: Mailbox) -> None:
    settings = replace(service.settings, doctor=replace(service.settings.doctor, port=free_port(), timeout=0.3))
    [step] = scheduler.tick(settings, clock=lambda: datetime.now(UTC))
    assert step.error is None and sorted(smtp_box.recipients()) == sorted(READERS)


def test_digest_run_checks_too_and_says_what_to_fix(service: World, smtp_box: Mailbox) -> None:
    dkim_record_of_another_key(service)
    config = service.settings.config_file
    assert config is not None
    config.write_text(
        config.read_text("utf-8").replace(f"https://{DOMAIN}/newsletter/", service.settings.email.public_url), "utf-8"
    )
    now_at = datetime.now(UTC)
    week = scheduler.job_week(service.settings, scheduler.runs_between(service.settings, now_at - timedelta(days=8),
                                                                       now_at)[-1])  # fmt: skip
    args = ["run", "--config", str(config), "--week", week.label]
    result = CliRunner().invoke(main, args, env={"DIGEST_SECRET": SECRET})
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: not sending: dkim record:") and "publish a TXT record" in line
    assert smtp_box.recipients() == []
