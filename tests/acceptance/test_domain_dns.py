"""DKIM keys and DNS records: `domain add` creates an ed25519 and an RSA-2048 key, `domain dns`
prints every record a domain publishes, and the private keys are never stored in clear."""

import base64
import re
import shutil
import sqlite3
import subprocess
from datetime import datetime, timezone

import pytest

from conftest import DOMAIN

OTHER = "other.test"
HOSTNAME = f"mail.{OTHER}"
RECORD_TYPES = {"MX", "TXT", "SRV", "CNAME"}
TXT_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')

# DER: AlgorithmIdentifier rsaEncryption, and the SubjectPublicKeyInfo prefix of an ed25519 key.
RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

# Byte strings that only a private key's encodings contain.
PRIVATE_MARKERS = {
    b"PRIVATE KEY-----": "PEM private key",
    # PKCS#8 PrivateKeyInfo: version 0 followed by the rsaEncryption AlgorithmIdentifier.
    bytes.fromhex("020100300d06092a864886f70d0101010500"): "PKCS#8 RSA header",
    # PKCS#1 RSAPrivateKey (RFC 8017 A.1.2): version 0 followed by a 2048-bit modulus.
    bytes.fromhex("020100028201"): "PKCS#1 RSA header",
    # PKCS#8 ed25519: the AlgorithmIdentifier followed by the wrapped 32-byte seed (RFC 8410 §7).
    bytes.fromhex("300506032b657004220420"): "PKCS#8 ed25519 header",
}


def records(text: str) -> list[tuple[str, str, str]]:
    """(owner, type, data) of every record line; asserts every other line is a comment."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        fields = line.split("\t", 4)
        assert len(fields) == 5, f"not `owner<TAB>ttl<TAB>IN<TAB>type<TAB>data`: {line!r}"
        owner, ttl, klass, rtype, data = fields
        assert owner.endswith("."), f"owner name not absolute: {line!r}"
        assert ttl.isdigit() and int(ttl) > 0, f"bad TTL: {line!r}"
        assert klass == "IN" and rtype in RECORD_TYPES, f"unexpected record: {line!r}"
        found.append((owner, rtype, data))
    return found


def txt_text(data: str) -> str:
    """The text of TXT record data: its quoted strings, each at most 255 bytes, joined."""
    strings = TXT_STRING.findall(data)
    assert strings and TXT_STRING.sub("", data).strip() == "", f"malformed TXT data: {data!r}"
    for s in strings:
        assert len(s.encode()) <= 255, f"TXT string over 255 bytes ({len(s)}): {data!r}"
    return "".join(re.sub(r"\\(.)", r"\1", s) for s in strings)


def tags(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        if part.strip():
            name, _, value = part.strip().partition("=")
            out[name.strip()] = value.strip()
    return out


def find(recs, owner: str, rtype: str) -> list[str]:
    return [data for o, t, data in recs if o == owner and t == rtype]


def der_item(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, position after) of the DER item at `pos`."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, data[pos:pos + length], pos + length


def rsa_public_key(spki: bytes) -> tuple[int, int]:
    """(modulus bits, exponent) of a DER SubjectPublicKeyInfo holding an RSA key."""
    tag, body, end = der_item(spki, 0)
    assert tag == 0x30 and end == len(spki), "SubjectPublicKeyInfo is not one SEQUENCE"
    tag, algorithm, pos = der_item(body, 0)
    assert tag == 0x30 and algorithm.startswith(RSA_ENCRYPTION_OID), "not rsaEncryption"
    tag, bits, _ = der_item(body, pos)
    assert tag == 0x03 and bits[0] == 0, "subjectPublicKey is not a BIT STRING"
    tag, key, _ = der_item(bits[1:], 0)
    assert tag == 0x30
    tag, modulus, pos = der_item(key, 0)
    assert tag == 0x02
    tag, exponent, _ = der_item(key, pos)
    assert tag == 0x02
    return int.from_bytes(modulus, "big").bit_length(), int.from_bytes(exponent, "big")


def openssl_describes(der: bytes) -> str | None:
    """`openssl pkey -text` of a DER public key, or None without openssl."""
    if shutil.which("openssl") is None:
        return None
    proc = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-noout", "-text"],
                          input=der, capture_output=True, timeout=60)
    assert proc.returncode == 0, f"openssl rejects the key: {proc.stderr!r}"
    return proc.stdout.decode(errors="replace")


def dkim_keys(recs, domain: str) -> dict[str, dict[str, str]]:
    """selector -> tags of every DKIM key record of `domain`."""
    suffix = f"._domainkey.{domain}."
    return {owner[:-len(suffix)]: tags(txt_text(data))
            for owner, rtype, data in recs if rtype == "TXT" and owner.endswith(suffix)}


def this_month() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m")


def configure(srv) -> None:
    """A public-looking hostname, the submissions and pop3 listeners on and the submission,
    imap and pop3s listeners off, so both an offered and a missing service are printed."""
    text = srv.config_text()
    text = re.sub(r'(?m)^hostname = .*$', f'hostname = "{HOSTNAME}"', text)
    assert re.search(r'(?m)^submissions = "', text), "the dev config serves submissions"
    for name in ("submission", "imap", "pop3s"):
        text = re.sub(rf'(?m)^({name} = ")', r"# \1", text)
    srv.config_path.write_text(text)


def listen_port(srv, name: str) -> int:
    m = re.search(rf'(?m)^{name} = "[^"]*:(\d+)"', srv.config_text())
    assert m, f"no {name} listener in the config"
    return int(m.group(1))


def test_domain_add_then_dns_prints_every_record_with_working_dkim_keys(make_server):
    srv = make_server(users=(), start=False)
    configure(srv)
    before = this_month()
    added = srv.cli("domain", "add", OTHER).stdout.decode()
    # Taken on both sides of the command, so a month boundary cannot fail the test.
    month = next((m for m in {before, this_month()} if f"pk{m}e" in added), None)
    assert month and f"pk{month}r" in added, (
        f"`domain add` should name the new DKIM selectors pk<yyyymm>e/r: {added!r}")

    proc = srv.cli("domain", "dns", OTHER)
    out = proc.stdout.decode()
    recs = records(out)
    apex = f"{OTHER}."
    host = f"{HOSTNAME}."

    assert find(recs, apex, "MX") == [f"10 {host}"], out
    assert [txt_text(d) for d in find(recs, apex, "TXT")] == ["v=spf1 mx -all"], out
    dmarc = [tags(txt_text(d)) for d in find(recs, f"_dmarc.{OTHER}.", "TXT")]
    assert len(dmarc) == 1 and dmarc[0]["v"] == "DMARC1", out
    assert dmarc[0]["p"] in ("none", "quarantine", "reject"), dmarc
    assert dmarc[0]["rua"] == f"mailto:postmaster@{OTHER}", dmarc
    sts = [tags(txt_text(d)) for d in find(recs, f"_mta-sts.{OTHER}.", "TXT")]
    assert len(sts) == 1 and sts[0]["v"] == "STSv1", out
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", sts[0]["id"]), sts
    assert f"https://mta-sts.{OTHER}/.well-known/mta-sts.txt" in out
    rpt = [tags(txt_text(d)) for d in find(recs, f"_smtp._tls.{OTHER}.", "TXT")]
    assert rpt == [{"v": "TLSRPTv1", "rua": f"mailto:postmaster@{OTHER}"}], out

    def srv_record(service: str) -> list[str]:
        return find(recs, f"{service}._tcp.{OTHER}.", "SRV")

    assert srv_record("_submissions") == [f"0 1 {listen_port(srv, 'submissions')} {host}"], out
    assert srv_record("_imaps") == [f"0 1 {listen_port(srv, 'imaps')} {host}"], out
    assert srv_record("_pop3") == [f"30 1 {listen_port(srv, 'pop3')} {host}"], out
    for off in ("_submission", "_imap", "_pop3s"):
        assert srv_record(off) == ["0 0 0 ."], f"{off} is not configured: {out}"
    for name in ("autoconfig", "autodiscover"):
        assert find(recs, f"{name}.{OTHER}.", "CNAME") == [host], out

    keys = dkim_keys(recs, OTHER)
    assert set(keys) == {f"pk{month}e", f"pk{month}r"}, out
    ed, rsa = keys[f"pk{month}e"], keys[f"pk{month}r"]
    assert ed["v"] == "DKIM1" and ed["k"] == "ed25519", ed
    raw = base64.b64decode(ed["p"], validate=True)
    assert len(raw) == 32, f"an ed25519 p= is the raw 32-byte key (RFC 8463): {len(raw)}"
    assert rsa["v"] == "DKIM1" and rsa["k"] == "rsa", rsa
    spki = base64.b64decode(rsa["p"], validate=True)
    assert rsa_public_key(spki) == (2048, 65537)

    described = openssl_describes(spki)
    if described is not None:
        assert "2048 bit" in described, described
        described = openssl_describes(ED25519_SPKI_PREFIX + raw)
        assert "ED25519" in described.upper(), described

    # The records are stable: asking again prints the same keys.
    again = dkim_keys(records(srv.cli("domain", "dns", OTHER).stdout.decode()), OTHER)
    assert again == keys


def marker_needles() -> dict[bytes, str]:
    """Private-key markers, raw and base64-encoded at each of the three alignments."""
    needles = dict(PRIVATE_MARKERS)
    for marker, label in PRIVATE_MARKERS.items():
        for pad in range(3):
            enc = base64.b64encode(b"\0" * pad + marker)
            start = 4 if pad else 0
            end = len(enc) - (4 if (pad + len(marker)) % 3 else 0)
            if end - start >= 8:
                needles[enc[start:end]] = f"{label} (base64)"
    return needles


def private_key_hits(data: bytes, rsa_moduli: list[bytes], ed_keys: list[bytes]) -> list[str]:
    hits = [label for needle, label in marker_needles().items() if needle in data]
    for modulus in rsa_moduli:
        # In a private key the modulus is followed by e = 65537 and the private exponent d;
        # in the stored public key nothing follows e.
        tail = modulus[-16:] + bytes.fromhex("0203010001")
        for d_start in (b"\x02\x82\x01", b"\x02\x82\x00", b"\x02\x81"):
            if tail + d_start in data:
                hits.append("RSA private key structure")
    for key in ed_keys:
        # PKCS#8 v2 of ed25519 carries the public key after [1] BIT STRING (RFC 5958).
        if bytes.fromhex("a123032100") + key in data:
            hits.append("PKCS#8 v2 ed25519 structure")
    return hits


def test_dkim_private_keys_are_never_in_clear_in_the_data_dir(make_server):
    srv = make_server(users=(), start=False)
    srv.cli("domain", "add", OTHER)
    srv.cli("domain", "dkim", "rotate", OTHER)
    recs = records(srv.cli("domain", "dns", OTHER).stdout.decode())
    recs += records(srv.cli("domain", "dns", DOMAIN).stdout.decode())
    keys = list(dkim_keys(recs, OTHER).values()) + list(dkim_keys(recs, DOMAIN).values())
    assert len(keys) == 6, f"expected 2 + 2 staged + 2 DKIM keys, got {len(keys)}"
    moduli, ed_keys = [], []
    for key in keys:
        der = base64.b64decode(key["p"])
        if key["k"] == "rsa":
            _, body, _ = der_item(der, 0)
            _, _, pos = der_item(body, 0)
            _, bits, _ = der_item(body, pos)
            _, rsa_key, _ = der_item(bits[1:], 0)
            _, modulus, _ = der_item(rsa_key, 0)
            moduli.append(modulus)
        else:
            ed_keys.append(der)

    if shutil.which("openssl"):
        # The detector itself must find real private keys, or a pass would prove nothing.
        for algorithm in (["-algorithm", "ed25519"],
                          ["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048"]):
            der = subprocess.run(["openssl", "genpkey", *algorithm, "-outform", "DER"],
                                 capture_output=True, check=True, timeout=120).stdout
            assert private_key_hits(der, [], []), f"markers miss a real {algorithm[1]} key"

    public_seen = set()
    # The TLS key is the one private key kept as a file (PEM, mode 0600) by design.
    files = sorted(p for p in srv.data.rglob("*") if p.is_file() and p != srv.key_path)
    for path in files:
        data = path.read_bytes()
        hits = private_key_hits(data, moduli, ed_keys)
        assert not hits, f"{path.relative_to(srv.data)} holds a private key in clear: {hits}"
        public_seen.update(k for k in ed_keys if k in data)
    # The public keys are stored in clear, so finding them proves the key table was scanned.
    assert public_seen == set(ed_keys), "the DKIM key table was not among the scanned files"


def test_domain_dns_creates_keys_for_a_domain_added_before_dkim(make_server):
    srv = make_server(users=(), start=False)
    db = sqlite3.connect(srv.data / "postkeep.db")
    try:
        with db:
            removed = db.execute("DELETE FROM dkim_keys").rowcount
    finally:
        db.close()
    assert removed == 2, f"init --domain should have created 2 DKIM keys, found {removed}"

    proc = srv.cli("domain", "dns", DOMAIN)
    keys = dkim_keys(records(proc.stdout.decode()), DOMAIN)
    assert sorted(k["k"] for k in keys.values()) == ["ed25519", "rsa"], proc.stdout.decode()
    assert "created" in proc.stderr.decode(), proc.stderr.decode()
    again = srv.cli("domain", "dns", DOMAIN)
    assert dkim_keys(records(again.stdout.decode()), DOMAIN) == keys
    assert "created" not in again.stderr.decode()


def test_rotation_is_staged_then_activated_and_old_keys_removed(make_server):
    srv = make_server(users=(), start=False)

    def states() -> dict[str, str]:
        out = srv.cli("domain", "dkim", "list", DOMAIN).stdout.decode()
        return {line.split("\t")[0]: line.split("\t")[3] for line in out.splitlines()}

    old = states()
    assert sorted(old.values()) == ["signing", "signing"], old
    srv.cli("domain", "dkim", "rotate", DOMAIN)
    staged = {sel for sel, state in states().items() if state == "staged"}
    assert len(staged) == 2 and not staged & set(old), states()
    published = dkim_keys(records(srv.cli("domain", "dns", DOMAIN).stdout.decode()), DOMAIN)
    assert set(published) == set(old) | staged, "staged keys must be published before they sign"

    srv.cli("domain", "dkim", "activate", DOMAIN)
    now = states()
    assert {sel for sel, state in now.items() if state == "signing"} == staged, now
    assert all(now[sel].startswith("retired") for sel in old), now
    refused = srv.cli("domain", "dkim", "remove", DOMAIN, sorted(staged)[0], check=False)
    assert refused.returncode != 0, "a signing key must not be removable"
    for sel in old:
        srv.cli("domain", "dkim", "remove", DOMAIN, sel)
    published = dkim_keys(records(srv.cli("domain", "dns", DOMAIN).stdout.decode()), DOMAIN)
    assert set(published) == staged


def test_domain_dns_of_an_unknown_domain_fails_clearly(make_server):
    srv = make_server(users=(), start=False)
    proc = srv.cli("domain", "dns", "nowhere.test", check=False)
    assert proc.returncode != 0
    assert "nowhere.test" in proc.stderr.decode(), proc.stderr.decode()
    assert proc.stdout == b"", "nothing may look like records for an unknown domain"
