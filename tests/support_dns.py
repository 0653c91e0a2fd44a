"""A real DNS server on 127.0.0.1 (dnslib, in this process, UDP and TCP) serving a zone the test writes.

`digest doctor` is pointed at it with `[doctor] nameservers = ["127.0.0.1"]` and the server's port, so
every DNS question of the checks (checkdmarc, pyspf, dkimpy, dnspython) goes over the wire to it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def _free_port() -> int:
    # one port free for both UDP and TCP
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for the DNS server")


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """Records by (name, type); a name with no record at all is NXDOMAIN, a known name without the type
    an empty answer. Changed freely between checks (the server reads it per question)."""

    records: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().rstrip(".")

    def add(self, name: str, rtype: str, *values: Any) -> Zone:
        self.records.setdefault((self._key(name), rtype), []).extend(values)
        return self

    def txt(self, name: str, *texts: str) -> Zone:
        # a TXT record is one or more strings of at most 255 bytes (long DKIM keys are split)
        for text in texts:
            data = text.encode()
            self.add(name, "TXT", TXT([data[i : i + 255] for i in range(0, len(data), 255)] or [b""]))
        return self

    def a(self, name: str, *addresses: str) -> Zone:
        for address in addresses:
            self.add(name, "AAAA" if ":" in address else "A", AAAA(address) if ":" in address else A(address))
        return self

    def mx(self, name: str, host: str, preference: int = 10) -> Zone:
        return self.add(name, "MX", MX(host, preference))

    def cname(self, name: str, target: str) -> Zone:
        return self.add(name, "CNAME", CNAME(target))

    def drop(self, name: str, rtype: str | None = None) -> Zone:
        for key in [k for k in self.records if k[0] == self._key(name) and rtype in (None, k[1])]:
            del self.records[key]
        return self

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        name = self._key(qname)
        self.asked.append((name, qtype))
        known = {key for key in self.records if key[0] == name}
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rdata in self.records.get((name, qtype), []) or self.records.get((name, "CNAME"), []):
            rtype = "CNAME" if (name, qtype) not in self.records else qtype
            reply.add_answer(RR(qname, getattr(QTYPE, rtype), rdata=rdata, ttl=60))
        return reply


@dataclass
class DnsServer:
    port: int
    zone: Zone

    def toml(self) -> str:
        return f'[doctor]\nnameservers = ["127.0.0.1"]\nport = {self.port}\ntimeout = 3\n'


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    zone = Zone()
    port = _free_port()
    quiet = DNSLogger("-request,-reply,-truncated,-error", logf=lambda text: None)
    servers = [DNSServer(zone, port=port, address="127.0.0.1", tcp=tcp, logger=quiet) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    try:
        yield DnsServer(port, zone)
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
