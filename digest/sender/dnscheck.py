"""The DNS half of `digest doctor`: what receivers will look up about the mail this list sends.

Every question goes through one dnspython Resolver made from [doctor] (nameservers, port, timeout; the
system's resolver by default), including those of the libraries doing the work:

- checkdmarc (SPF syntax and its DNS-lookup count, DMARC records, MTA-STS, TLS-RPT, BIMI) takes the
  resolver as an argument. It also keeps a module-wide cache keyed by name only (not by resolver), so
  each doctor run empties it first: a zone fixed a minute ago is read again, not remembered.
- pyspf (whether the relay's addresses pass SPF) has no resolver argument: it calls the module function
  `spf.DNSLookup`, which is its documented way of plugging a DNS library in. That function is replaced
  here, once, by one that asks this run's resolver (set per thread while the check runs) and falls
  back to pyspf's own lookup otherwise.
- dkimpy (verifying the signature of the sample message) takes a `dnsfunc`, given `Dns.dkim_txt`.

A lookup that fails (a timeout, SERVFAIL) is a warning ("could not check"), never a failure: only an
answer that shows a mistake fails a check, so a flaky resolver cannot stop a weekly send.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import checkdmarc.bimi
import checkdmarc.dmarc
import checkdmarc.mta_sts
import checkdmarc.smtp_tls_reporting
import checkdmarc.spf
import checkdmarc.utils
import dkim.crypto
import dns.exception
import dns.name
import dns.resolver
import spf as pyspf

from digest.config import DoctorSettings
from digest.records import Finding
from digest.sender.dkimsign import ED25519, DkimKey

MAX_SPF_LOOKUPS = 10  # RFC 7208 section 4.6.4: more is a permerror at every receiver
MAX_VOID_LOOKUPS = 2
# Where a relay on this machine or a private network sends from is not what receivers see.
INTERNAL = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128",
                                      "fc00::/7", "fe80::/10", "169.254.0.0/16")
)  # fmt: skip
# Transports whose mail leaves from a provider's own servers (a row of the transport registry each).
PROVIDERS = {"ses": "Amazon SES"}
FAILED_LOOKUP = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration, OSError)


class LookupFailed(Exception):
    """DNS gave no answer (timeout, SERVFAIL): nothing can be concluded."""


class Dns:
    """The one resolver of a doctor run."""

    def __init__(self, settings: DoctorSettings) -> None:
        try:
            self.resolver = dns.resolver.Resolver(configure=not settings.nameservers)
        except dns.resolver.NoResolverConfiguration:
            self.resolver = dns.resolver.Resolver(configure=False)
        if settings.nameservers:
            self.resolver.nameservers = list(settings.nameservers)
        self.resolver.port = settings.port
        self.resolver.lifetime = settings.timeout
        self.resolver.timeout = settings.timeout
        self.resolver.cache = None
        self.timeout = settings.timeout

    @property
    def where(self) -> str:
        servers = ", ".join(str(n) for n in self.resolver.nameservers) or "none"
        return f"{servers} port {self.resolver.port}"

    def _answer(self, name: str, rtype: str) -> Any:
        try:
            return self.resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except FAILED_LOOKUP as exc:
            raise LookupFailed(f"no answer for {name} {rtype} from {self.where}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{name} {rtype}: {exc}") from exc

    def txt(self, name: str) -> list[str]:
        answer = self._answer(name, "TXT")
        if answer is None or answer.rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    def addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        found: list[str] = []
        for rtype in ("A", "AAAA"):
            answer = self._answer(host, rtype)
            if answer is not None and answer.rrset is not None:
                found += [r.address for r in answer]
        return found

    def mx(self, domain: str) -> list[tuple[int, str]] | None:
        """MX records (preference, host); None when the domain does not exist."""
        answer = self._answer(domain, "MX")
        if answer is None:
            return None
        if answer.rrset is None:
            return []
        return sorted((r.preference, r.exchange.to_text().rstrip(".")) for r in answer)

    def dkim_txt(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's dnsfunc: the TXT record at `name`, strings joined."""
        try:
            found = self.txt(name.decode("ascii"))
        except LookupFailed:
            return None
        return found[0].encode() if found else None

    def spf_lookup(self, name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list[Any]:
        """pyspf's DNSLookup contract: [((name, qtype), value)] for the answers, [] for none."""
        try:
            answer = self._answer(name, qtype)
        except LookupFailed as exc:
            raise pyspf.TempError(f"DNS {exc}") from exc
        if answer is None or answer.rrset is None:
            return []
        found: list[Any] = []
        for r in answer:
            if qtype in ("A", "AAAA"):
                found.append(((name, qtype), r.address))
            elif qtype == "MX":
                found.append(((name, qtype), (r.preference, r.exchange)))
            elif qtype == "PTR":
                found.append(((name, qtype), r.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                found.append(((name, qtype), r.strings))
        return found


_SPF_DNS = threading.local()
_PYSPF_LOOKUP: Callable[..., Any] = pyspf.DNSLookup


def _spf_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list[Any]:
    active: Dns | None = getattr(_SPF_DNS, "dns", None)
    if active is None:
        return list(_PYSPF_LOOKUP(name, qtype, strict, timeout))
    return active.spf_lookup(name, qtype, strict, timeout)


pyspf.DNSLookup = _spf_lookup


def forget_cached_answers() -> None:
    checkdmarc.utils.DNS_CACHE.clear()


def _failed(exc: BaseException) -> bool:
    """Whether a library's error is a lookup that got no answer rather than an answer showing a mistake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (*FAILED_LOOKUP, LookupFailed)):
            return True
        inner = getattr(seen, "error", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return False


def _could_not(check: str, exc: BaseException) -> Finding:
    return Finding(check, "warn", f"could not check: {exc}", "make sure the DNS server answers ([doctor] nameservers)")


def org_domain(domain: str) -> str:
    """The organisational domain (public suffix list) that DMARC's relaxed alignment compares."""
    return str(checkdmarc.utils.get_base_domain(domain.lower().rstrip(".")))


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return domain == from_domain
    return org_domain(domain) == org_domain(from_domain)


@dataclass(frozen=True)
class Identity:
    """The names receivers check: From, the envelope sender (Return-Path), the DKIM keys, the unsubscribe
    mailbox, and the addresses the relay sends from."""

    from_domain: str
    envelope_domain: str
    keys: tuple[DkimKey, ...]
    unsubscribe_domain: str
    relay: str  # the SMTP host; a provider transport's name (PROVIDERS); "" for the Maildir outbox
    sending_addresses: tuple[str, ...] = ()  # configured: the relay's public addresses


# -- SPF -----------------------------------------------------------------------------------------


def spf_record(resolver: Dns, domain: str) -> Finding:
    check = "spf"
    fix_publish = f'publish a TXT record at {domain}: "v=spf1 ip4:<your relay\'s address> -all"'
    try:
        found = checkdmarc.spf.query_spf_record(domain, resolver=resolver.resolver, timeout=resolver.timeout)
    except checkdmarc.spf.MultipleSPFRTXTRecords:
        return Finding(check, "fail", f"{domain} has several SPF records (receivers then ignore all)", "merge them")
    except checkdmarc.spf.SPFError as exc:
        if _failed(exc):
            return _could_not(check, exc)
        return Finding(check, "fail", f"no SPF record at {domain} ({exc})", fix_publish)
    record = found["record"]
    try:
        parsed = checkdmarc.spf.parse_spf_record(
            record, domain, resolver=resolver.resolver, timeout=resolver.timeout, ignore_too_many_lookups=True
        )
    except checkdmarc.spf.SPFError as exc:
        if _failed(exc):
            return _could_not(check, exc)
        return Finding(check, "fail", f"the SPF record of {domain} does not parse: {exc}", f"fix {record!r}")
    lookups, void = int(parsed["dns_lookups"]), int(parsed["void_dns_lookups"])
    if lookups > MAX_SPF_LOOKUPS:
        return Finding(
            check,
            "fail",
            f"the SPF record of {domain} needs {lookups} DNS lookups (at most {MAX_SPF_LOOKUPS}): receivers "
            "treat it as a permanent error",
            "replace include:/a/mx terms you do not need, or list the addresses (ip4:/ip6:) instead",
        )
    if void > MAX_VOID_LOOKUPS:
        return Finding(
            check,
            "fail",
            f"the SPF record of {domain} has {void} lookups of names that do not exist (at most {MAX_VOID_LOOKUPS})",
            "remove the terms that point at names without records",
        )
    return Finding(check, "ok", f"{domain}: {record} ({lookups} of {MAX_SPF_LOOKUPS} DNS lookups)")


def spf_relay(resolver: Dns, identity: Identity) -> Finding:
    """Whether SPF of the envelope domain passes for every address the relay sends from (pyspf)."""
    check = "spf relay"
    domain = identity.envelope_domain
    if not identity.relay and not identity.sending_addresses:
        return Finding(check, "ok", "mail goes to the Maildir outbox: no relay to authorise")
    if identity.relay in PROVIDERS and not identity.sending_addresses:
        return Finding(
            check,
            "ok",
            f"mail leaves through {PROVIDERS[identity.relay]}, from its addresses: SPF is checked at the MAIL FROM "
            "domain it uses (set a custom MAIL FROM domain there, with its own SPF, for SPF alignment)",
        )
    addresses = list(identity.sending_addresses)
    source = "doctor.sending_addresses"
    if not addresses:
        source = f"smtp.host {identity.relay}"
        try:
            addresses = resolver.addresses(identity.relay)
        except LookupFailed as exc:
            return _could_not(check, exc)
        internal = [a for a in addresses if any(ipaddress.ip_address(a) in net for net in INTERNAL)]
        if not addresses or internal:
            why = "has no address" if not addresses else f"is on this machine or a private network ({internal[0]})"
            return Finding(
                check,
                "warn",
                f"{source} {why}: receivers see another address, which cannot be checked here",
                "set doctor.sending_addresses to the public addresses your mail leaves from",
            )
    _SPF_DNS.dns = resolver
    try:
        results = {a: pyspf.query(i=a, s=f"postmaster@{domain}", h=domain, timeout=resolver.timeout).check()[0]
                   for a in addresses}  # fmt: skip
    finally:
        _SPF_DNS.dns = None
    if any(r == "temperror" for r in results.values()):
        return Finding(check, "warn", f"could not check: DNS did not answer while evaluating SPF of {domain}")
    refused = {a: r for a, r in results.items() if r != "pass"}
    if refused:
        address, result = next(iter(refused.items()))
        term = "ip6" if ":" in address else "ip4"
        return Finding(
            check,
            "fail",
            f"SPF of {domain} gives {result} for {address} ({source}): receivers will not trust the mail",
            f"add {term}:{address} (or your provider's include:) to the SPF record of {domain}",
        )
    return Finding(check, "ok", f"SPF of {domain} passes for {', '.join(addresses)} ({source})")


# -- DMARC ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dmarc:
    record: str
    location: str
    policy: str
    adkim: str
    aspf: str


def dmarc_record(resolver: Dns, from_domain: str) -> tuple[Finding, Dmarc | None]:
    check = "dmarc"
    fix = f'publish a TXT record at _dmarc.{org_domain(from_domain)}: "v=DMARC1; p=none; rua=mailto:<you>"'
    options: dict[str, Any] = {"resolver": resolver.resolver, "timeout": resolver.timeout}
    try:
        found = checkdmarc.dmarc.query_dmarc_record(from_domain, **options)
    except (checkdmarc.dmarc.DMARCError, checkdmarc.utils.DNSException) as exc:
        if _failed(exc):
            return _could_not(check, exc), None
        return Finding(check, "fail", f"no DMARC record for {from_domain} ({exc})", fix), None
    location = str(found["location"])
    try:
        parsed: Any = checkdmarc.dmarc.parse_dmarc_record(found["record"], location, **options)
    except (checkdmarc.dmarc.DMARCError, checkdmarc.utils.DNSException) as exc:
        if _failed(exc):
            return _could_not(check, exc), None
        return Finding(check, "fail", f"the DMARC record at _dmarc.{location} is wrong: {exc}", fix), None
    tags = parsed["tags"]

    def tag(name: str, default: str) -> str:
        return str(tags.get(name, {}).get("value", default)).lower()

    policy = tag("p", "none")
    if location != from_domain.lower().rstrip(".") and "sp" in tags:
        policy = tag("sp", policy)  # a subdomain's own policy, published at the organisational domain
    dmarc = Dmarc(str(found["record"]), location, policy, tag("adkim", "r"), tag("aspf", "r"))
    detail = f"p={policy} at _dmarc.{location} (adkim={dmarc.adkim}, aspf={dmarc.aspf})"
    if policy == "none":
        detail += ": monitoring only, which the bulk-sender rules accept"
    return Finding(check, "ok", detail), dmarc


def dmarc_alignment(identity: Identity, dmarc: Dmarc) -> Finding:
    """DMARC passes when an authenticated domain aligns with From: the DKIM d= (adkim) or the envelope
    domain that SPF checks (aspf). DKIM alignment is the one that survives forwarding."""
    check = "dmarc alignment"
    mode = {"s": "strict", "r": "relaxed"}
    dkim_domains = sorted({key.domain for key in identity.keys})
    dkim_ok = [d for d in dkim_domains if aligned(d, identity.from_domain, dmarc.adkim)]
    spf_ok = aligned(identity.envelope_domain, identity.from_domain, dmarc.aspf)
    spf_text = f"Return-Path {identity.envelope_domain} {'aligns' if spf_ok else 'does not align'} ({mode[dmarc.aspf]})"
    if dkim_ok:
        return Finding(check, "ok", f"DKIM d={dkim_ok[0]} aligns with From {identity.from_domain} "
                                    f"({mode[dmarc.adkim]}); {spf_text}")  # fmt: skip
    if dkim_domains:
        problem = f"DKIM d={dkim_domains[0]} does not align with From {identity.from_domain} ({mode[dmarc.adkim]})"
        if spf_ok:
            return Finding(
                check, "warn", f"{problem}; only SPF does ({spf_text}), which forwarding breaks",
                f"set email.dkim_domain to {identity.from_domain} (and publish its key there)",
            )  # fmt: skip
        return Finding(
            check, "fail", f"{problem}, and the {spf_text}: DMARC fails for every message",
            f"set email.dkim_domain to {identity.from_domain} (and publish its key there)",
        )  # fmt: skip
    if spf_ok:
        return Finding(
            check, "warn", f"messages are not DKIM-signed here; {spf_text}, which forwarding breaks",
            "set email.dkim_key (unless your relay signs for the From domain)",
        )  # fmt: skip
    return Finding(
        check, "fail", f"messages are not DKIM-signed here and the {spf_text} with From {identity.from_domain}",
        "set email.dkim_key and email.dkim_domain (or send with a Return-Path in the From domain)",
    )  # fmt: skip


# -- DKIM ----------------------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _same_key(key: DkimKey, published: str) -> bool:
    try:
        raw = base64.b64decode(published, validate=True)
    except ValueError:
        return False
    if key.algorithm == ED25519:
        return raw == base64.b64decode(key.public_key)
    try:
        parsed = dkim.crypto.parse_public_key(raw)
    except dkim.crypto.UnparsableKeyError:
        return False
    numbers = key.private.public_key().public_numbers()
    return bool(parsed["modulus"] == numbers.n and parsed["publicExponent"] == numbers.e)


def dkim_record(resolver: Dns, key: DkimKey) -> Finding:
    check = "dkim record" if key.algorithm != ED25519 else "dkim record ed25519"
    name = key.record_name
    publish = f'publish a TXT record at {name}: "{key.record}"'
    try:
        found = [r for r in resolver.txt(name) if "p=" in r]
    except LookupFailed as exc:
        return _could_not(check, exc)
    if not found:
        return Finding(check, "fail", f"no DKIM key at {name}: receivers cannot check the signature", publish)
    if len(found) > 1:
        return Finding(check, "fail", f"{name} holds {len(found)} DKIM records", f"keep one: {key.record}")
    tags = _tags(found[0])
    kind = "ed25519" if key.algorithm == ED25519 else "rsa"
    if not tags.get("p"):
        return Finding(check, "fail", f"the DKIM key at {name} is revoked (empty p=)", publish)
    if tags.get("k", "rsa").lower() != kind:
        return Finding(check, "fail", f"{name} holds a k={tags.get('k')} key, the signature is {kind}", publish)
    if not _same_key(key, tags["p"]):
        return Finding(
            check, "fail", f"{name} holds another key than the one that signs ({key.selector}): signatures fail",
            publish,
        )  # fmt: skip
    if "y" in tags.get("t", "").split(":"):
        return Finding(check, "warn", f"{name} has t=y (testing): receivers may ignore failures", "remove t=y")
    if key.algorithm != ED25519 and key.bits < 2048:
        return Finding(check, "warn", f"{name}: a {key.bits}-bit key", "use a 2048-bit RSA key")
    return Finding(check, "ok", f"{name} holds the public half of the signing key ({kind}, {key.bits} bits)")


# -- mailboxes and the optional records ------------------------------------------------------------


def mx(resolver: Dns, check: str, domain: str, purpose: str) -> Finding:
    hosts: list[str] = []
    try:
        records = resolver.mx(domain)
        if records == []:
            hosts = resolver.addresses(domain)
    except LookupFailed as exc:
        return _could_not(check, exc)
    if records is None:
        return Finding(check, "fail", f"{domain} does not exist: {purpose} are lost", "use a domain that receives mail")
    if records == [(0, "")] or records == [(0, ".")]:
        return Finding(check, "fail", f"{domain} has a null MX: it receives no mail, so {purpose} are lost",
                       "use an address in a domain that receives mail")  # fmt: skip
    if not records:
        if hosts:
            return Finding(check, "warn", f"{domain} has no MX record (mail goes to its address {hosts[0]})",
                           f"publish an MX record for {domain}")  # fmt: skip
        return Finding(check, "fail", f"{domain} has no MX record and no address: {purpose} are lost",
                       f"publish an MX record for {domain}")  # fmt: skip
    return Finding(check, "ok", f"{domain}: MX {', '.join(host for _, host in records)}")


def optional_records(resolver: Dns, domain: str) -> list[Finding]:
    """MTA-STS, TLS-RPT and BIMI: good to have, never a warning when absent."""
    lookups: Sequence[tuple[str, str, Callable[..., Any], str]] = (
        ("mta-sts", f"_mta-sts.{domain}", checkdmarc.mta_sts.query_mta_sts_record, "mail to you over verified TLS"),
        ("tls-rpt", f"_smtp._tls.{domain}", checkdmarc.smtp_tls_reporting.query_smtp_tls_reporting_record,
         "reports of TLS failures"),
        ("bimi", f"default._bimi.{domain}", checkdmarc.bimi.query_bimi_record, "your logo next to the mail, with "
         "p=quarantine or reject"),
    )  # fmt: skip
    found = []
    for check, name, query, what in lookups:
        try:
            result = query(domain, resolver=resolver.resolver, timeout=resolver.timeout)
        except Exception as exc:  # each library raises its own "not found"; absent is fine here
            if _failed(exc):
                found.append(_could_not(check, exc))
            else:
                found.append(Finding(check, "ok", f"not published at {name} (optional: {what})"))
            continue
        record = result.get("record") if isinstance(result, dict) else None
        found.append(Finding(check, "ok", f"{name}: {record}" if record else f"not published at {name}"))
    return found


def check_dns(settings: DoctorSettings, identity: Identity) -> list[Finding]:
    """Every DNS check, in the order a reader fixes them."""
    forget_cached_answers()
    resolver = Dns(settings)
    findings = [spf_record(resolver, identity.envelope_domain), spf_relay(resolver, identity)]
    dmarc_finding, dmarc = dmarc_record(resolver, identity.from_domain)
    findings.append(dmarc_finding)
    if dmarc is not None:
        findings.append(dmarc_alignment(identity, dmarc))
    if identity.keys:
        findings += [dkim_record(resolver, key) for key in identity.keys]
    else:
        findings.append(Finding("dkim record", "warn", "email.dkim_key is not set: messages are not signed here",
                                "create a key (openssl genrsa 2048), set email.dkim_key and dkim_selector, publish "
                                "the record digest doctor then prints (unless your relay signs for you)"))  # fmt: skip
    findings.append(mx(resolver, "mx unsubscribe", identity.unsubscribe_domain, "mailto unsubscribe requests"))
    findings.append(mx(resolver, "mx bounces", identity.envelope_domain, "bounces"))
    findings += optional_records(resolver, identity.from_domain)
    return findings
