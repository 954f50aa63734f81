"""A real authoritative DNS server (NSD, Debian package `nsd`) on a loopback port, serving
generated zones for mail domains: MX, SPF, DKIM keys and DMARC policies.

Used by tests/acceptance/test_inbound_auth.py (zones built from `MailDomain`s) and
tests/acceptance/test_outbound.py (`Zone`s holding what `postkeep domain dns` prints); also
runnable by hand to poke at the zones:

    python3 tests/dns/authdns.py /tmp/dns 5353     # then: dig @127.0.0.1 -p 5353 a.test TXT

Every domain gets its own zone; a zone for their parent (`test.`) answers NXDOMAIN for every
other name below it (HELO names, DMARC's tree walk), as the real DNS would.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

START_TIMEOUT = 30.0


@dataclass
class DkimKey:
    """An RSA key pair: the PEM private key dkimpy signs with, the DNS `p=` value."""

    selector: str
    private_pem: bytes
    public_b64: str

    @classmethod
    def generate(cls, selector: str, workdir: Path, bits: int = 2048) -> "DkimKey":
        openssl = shutil.which("openssl")
        if not openssl:
            raise RuntimeError("openssl is not installed (needed to generate DKIM test keys)")
        fd, name = tempfile.mkstemp(prefix=f"{selector}.", suffix=".key.pem", dir=workdir)
        os.close(fd)
        key_path = Path(name)
        # -traditional: PKCS#1 `RSA PRIVATE KEY`, the form dkimpy reads.
        subprocess.run([openssl, "genrsa", "-traditional", "-out", str(key_path), str(bits)],
                       check=True, capture_output=True)
        public_der = subprocess.run(
            [openssl, "rsa", "-in", str(key_path), "-pubout", "-outform", "DER"],
            check=True, capture_output=True).stdout
        return cls(selector, key_path.read_bytes(), base64.b64encode(public_der).decode())


@dataclass
class MailDomain:
    """What one domain publishes."""

    name: str
    dmarc: str  # the whole DMARC record, e.g. "v=DMARC1; p=reject"
    spf: str = "v=spf1 ip4:127.0.0.1 -all"
    dkim: list[DkimKey] = field(default_factory=list)

    def zone(self) -> str:
        origin = f"{self.name}."
        records = [
            f"@ IN MX 10 mail.{origin}",
            "mail IN A 127.0.0.1",
            f"@ IN TXT {txt(self.spf)}",
            f"_dmarc IN TXT {txt(self.dmarc)}",
        ]
        for key in self.dkim:
            records.append(
                f"{key.selector}._domainkey IN TXT {txt('v=DKIM1; k=rsa; p=' + key.public_b64)}")
        return zone_text(self.name, "\n".join(records))


@dataclass
class Zone:
    """A zone given as zone-file lines (names absolute, or relative to `name`), e.g. what
    `postkeep domain dns` prints; SOA and NS are added."""

    name: str
    records: str

    def zone(self) -> str:
        return zone_text(self.name, self.records)


def zone_text(name: str, records: str) -> str:
    """The zone file of `name`: its SOA and NS records (ns.NAME at 127.0.0.1), then `records`."""
    origin = f"{name}."
    return "\n".join([
        f"$ORIGIN {origin}",
        "$TTL 300",
        f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60",
        f"@ IN NS ns.{origin}",
        "ns IN A 127.0.0.1",
        records,
    ]) + "\n"


def txt(value: str) -> str:
    """A TXT rdata: character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    assert '"' not in value and "\\" not in value, value
    parts = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return "( " + " ".join(f'"{p}"' for p in parts) + " )"


def nsd_binary() -> str:
    path = shutil.which("nsd") or shutil.which("nsd", path="/usr/sbin:/usr/local/sbin")
    if not path:
        raise RuntimeError("NSD is not installed: `apt-get install nsd` (scripts/test does it)")
    return path


def free_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class AuthoritativeDns:
    """NSD serving `domains` (and their parent zone) on 127.0.0.1:`port` (UDP and TCP)."""

    def __init__(self, workdir: Path, domains: list[MailDomain | Zone], parent: str = "test",
                 port: int | None = None):
        self.dir = workdir
        self.domains = domains
        self.parent = parent
        # Callers that also choose ports for other servers pass one from the same registry
        # (tests/acceptance/conftest.py `free_ports`), so no port is chosen twice before use.
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "nsd.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        zones = {self.parent: zone_text(self.parent, "")}
        zones.update({d.name: d.zone() for d in self.domains})
        for name, text in zones.items():
            (self.dir / f"{name}.zone").write_text(text)
        d = self.dir
        conf = [
            "server:",
            "    ip-address: 127.0.0.1",
            f"    port: {self.port}",
            "    do-ip6: no",
            # Stay the invoking user: the zone files live in a private temp directory.
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{d}"',
            f'    zonelistfile: "{d}/zone.list"',
            '    database: ""',
            f'    pidfile: "{d}/nsd.pid"',
            f'    xfrdfile: "{d}/xfrd.state"',
            f'    xfrdir: "{d}"',
            f'    logfile: "{self.log_path}"',
            "    server-count: 1",
            "    verbosity: 1",
            "remote-control:",
            "    control-enable: no",
        ]
        for name in zones:
            conf += ["zone:", f'    name: "{name}"', f'    zonefile: "{name}.zone"']
        path = d / "nsd.conf"
        path.write_text("\n".join(conf) + "\n")
        return path

    def start(self) -> None:
        conf = self.write_config()
        check = subprocess.run([shutil.which("nsd-checkconf", path="/usr/sbin:/usr/bin")
                                or "nsd-checkconf", str(conf)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"nsd-checkconf rejected {conf}: {check.stderr.decode()}")
        with open(self.dir / "nsd.stderr", "ab") as err:
            self.proc = subprocess.Popen([nsd_binary(), "-d", "-c", str(conf)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        query = dns.message.make_query(f"{self.domains[0].name}.", "SOA")
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                answer = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"nsd did not answer on {self.address}: {self.log_tail()}")

    def txt(self, name: str) -> bytes | None:
        """The TXT record at `name`, its strings joined (None if there is none), as a DKIM
        verifier asks for a key."""
        # EDNS: a 2048-bit key's record does not fit in 512 octets.
        query = dns.message.make_query(name, "TXT", use_edns=0)
        answer = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=5)
        for rrset in answer.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    def log_tail(self) -> str:
        parts = []
        for name in ("nsd.log", "nsd.stderr"):
            try:
                parts.append((self.dir / name).read_text(errors="replace")[-3000:])
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    workdir = Path(argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    domains = [MailDomain("a.test", "v=DMARC1; p=reject", dkim=[DkimKey.generate("sel", workdir)]),
               MailDomain("b.test", "v=DMARC1; p=quarantine",
                          dkim=[DkimKey.generate("sel", workdir)])]
    server = AuthoritativeDns(workdir, domains)
    server.port = int(argv[2])
    server.start()
    print(f"serving a.test and b.test on {server.address}; keys in {workdir}; Ctrl-C stops")
    try:
        assert server.proc is not None
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
