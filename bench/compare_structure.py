#!/usr/bin/env python3
"""ENVELOPE and BODYSTRUCTURE of postkeep against Dovecot, field by field, on the benchmark's
10,000-message mailbox.

Sets up both servers exactly as bench/imap_bench.py does (same Maildir, same UIDs, checked
through RFC822.SIZE), runs `UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)` on both (and again after
`ENABLE UTF8=ACCEPT` when both servers advertise it), parses every response and compares them
per UID and per field (RFC 9051 §7.5.2). Differences are grouped into categories (field and
kind of difference) with counts and a few examples, each with the message's raw header lines
that the field comes from. The report goes to bench/results/structure-<timestamp>.md (and every
difference to a .json next to it).

Python 3.11 standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import imap_bench as ib

ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
                   "in-reply-to", "message-id")
ADDRESS_FIELDS = {"from", "sender", "reply-to", "to", "cc", "bcc"}
ADDRESS_PARTS = ("name", "adl", "mailbox", "host")
# The header fields each ENVELOPE field is taken from (RFC 9051 §7.5.2: sender and reply-to
# default to from).
ENVELOPE_HEADERS = {
    "date": ("date",), "subject": ("subject",), "from": ("from",),
    "sender": ("sender", "from"), "reply-to": ("reply-to", "from"), "to": ("to",),
    "cc": ("cc",), "bcc": ("bcc",), "in-reply-to": ("in-reply-to",),
    "message-id": ("message-id",),
}
PART_HEADERS = {
    "type": ("content-type",), "subtype": ("content-type",), "params": ("content-type",),
    "id": ("content-id",), "description": ("content-description",),
    "encoding": ("content-transfer-encoding",),
    "size": ("content-type", "content-transfer-encoding"),
    "lines": ("content-type", "content-transfer-encoding"), "md5": ("content-md5",),
    "disposition": ("content-disposition",), "language": ("content-language",),
    "location": ("content-location",), "structure": ("content-type",),
    "extension": ("content-type",),
}
# What Dovecot writes for the parts of an address it could not parse.
DOVECOT_PLACEHOLDERS = {b"MISSING_MAILBOX", b"MISSING_DOMAIN", b"SYNTAX_ERROR",
                        b".MISSING-HOST-NAME."}
# Differences in what RFC 2045 §5.1 and §6.1, RFC 2183 §2 and RFC 2231 make case-insensitive.
CASE_INSENSITIVE = {"body.type", "body.subtype", "body.encoding", "body.disposition"}
ABSENT = "<absent>"  # an extension field a server left out (RFC 9051 allows truncating them)
FETCH_HEAD = re.compile(rb"\* (\d+) FETCH ")
MAX_HEADER_LINES = 6  # per example in the report
EIGHT_BIT = ("EIGHT_BIT_QUOTED", "EIGHT_BIT_LITERAL")


# ---------------------------------------------------------------------------------------------
# IMAP response parsing (RFC 9051 §9: nested lists, quoted strings, literals, NIL, atoms)


class Atom(str):
    """An atom (or number-like atom), told apart from a string, which is bytes."""


class ParseError(Exception):
    pass


class Reader:
    """Reads values from one response as Conn.read_response returns it: [line, literal, line,
    literal, line, ...], each line but the last ending in a `{n}` literal marker."""

    def __init__(self, parts: list[bytes], pos: int = 0):
        self.parts = parts
        self.seg = 0
        self.pos = pos
        # Quoted strings holding 8-bit bytes: RFC 9051 §9 (QUOTED-CHAR) allows them only once
        # UTF8=ACCEPT is enabled (RFC 6855 §3); otherwise 8-bit text must be a literal.
        self.eight_bit_quoted = 0
        # Literals holding 8-bit bytes: valid IMAP, but header text a client that has not
        # enabled UTF8=ACCEPT cannot know the charset of (RFC 6855 §7).
        self.eight_bit_literal = 0

    @property
    def line(self) -> bytes:
        return self.parts[self.seg]

    def skip_spaces(self) -> None:
        while self.line[self.pos:self.pos + 1] == b" ":
            self.pos += 1

    def value(self):
        self.skip_spaces()
        c = self.line[self.pos:self.pos + 1]
        if c == b"(":
            self.pos += 1
            items = []
            while True:
                self.skip_spaces()
                if self.line[self.pos:self.pos + 1] == b")":
                    self.pos += 1
                    return items
                if self.pos >= len(self.line.rstrip(b"\r\n")):
                    raise ParseError(f"unterminated list in {self.line[:200]!r}")
                items.append(self.value())
        if c == b'"':
            return self.quoted()
        if c == b"{":
            return self.literal()
        return self.atom()

    def quoted(self) -> bytes:
        out = bytearray()
        i = self.pos + 1
        line = self.line
        while i < len(line):
            ch = line[i]
            if ch == 0x5C:  # backslash: quoted-specials only, but take any escaped byte
                out.append(line[i + 1])
                i += 2
            elif ch == 0x22:
                self.pos = i + 1
                self.eight_bit_quoted += any(c > 127 for c in out)
                return bytes(out)
            else:
                out.append(ch)
                i += 1
        raise ParseError(f"unterminated quoted string in {line[:200]!r}")

    def literal(self) -> bytes:
        m = ib.LITERAL.match(self.line, self.pos)
        if not m or self.seg + 2 >= len(self.parts):
            raise ParseError(f"bad literal at {self.line[self.pos:self.pos + 40]!r}")
        data = self.parts[self.seg + 1]
        if len(data) != int(m.group(1)):
            raise ParseError("short literal")
        self.seg += 2
        self.pos = 0
        self.eight_bit_literal += any(c > 127 for c in data)
        return bytes(data)

    def atom(self):
        line = self.line
        i = self.pos
        depth = 0  # section specs like BODY[HEADER.FIELDS (A B)] hold spaces and parentheses
        while i < len(line):
            ch = line[i:i + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in b' ()"{\r\n':
                break
            i += 1
        if i == self.pos:
            raise ParseError(f"unexpected {line[i:i + 20]!r}")
        text = line[self.pos:i].decode("latin-1")
        self.pos = i
        if text.upper() == "NIL":
            return None
        return int(text) if text.isdigit() else Atom(text)


def fetch_items(resp: list[bytes]) -> tuple[int, dict]:
    """`* n FETCH (K V K V ...)` -> (n, {K: V}), keys upper-cased; the keys EIGHT_BIT_QUOTED
    and EIGHT_BIT_LITERAL count quoted strings and literals with 8-bit bytes in the response."""
    m = FETCH_HEAD.match(resp[0])
    if not m:
        raise ParseError(f"not a FETCH response: {resp[0][:80]!r}")
    reader = Reader(resp, m.end())
    items = reader.value()
    if not isinstance(items, list) or len(items) % 2:
        raise ParseError(f"bad FETCH item list: {resp[0][:120]!r}")
    out = {str(k).upper(): v for k, v in zip(items[0::2], items[1::2])}
    out["EIGHT_BIT_QUOTED"] = reader.eight_bit_quoted
    out["EIGHT_BIT_LITERAL"] = reader.eight_bit_literal
    return int(m.group(1)), out


def fetch_by_uid(untagged: list[list[bytes]]) -> dict[int, dict]:
    """UID -> merged FETCH items of every FETCH response carrying that UID."""
    out: dict[int, dict] = {}
    for resp in untagged:
        if not FETCH_HEAD.match(resp[0]):
            continue
        _, items = fetch_items(resp)
        if "UID" in items:
            merged = out.setdefault(items["UID"], dict.fromkeys(EIGHT_BIT, 0))
            for key in EIGHT_BIT:
                merged[key] += items.pop(key)
            merged.update(items)
    return out


# ---------------------------------------------------------------------------------------------
# Turning ENVELOPE and BODYSTRUCTURE into comparable fields


def envelope_fields(env) -> dict:
    if not isinstance(env, list) or len(env) != 10:
        return {"envelope": env}
    return dict(zip(ENVELOPE_FIELDS, env))


@dataclass
class Part:
    """One node of a BODYSTRUCTURE: its fields, and where its header is (`section` for
    BODY.PEEK[...]: HEADER, N.MIME or N.HEADER)."""
    fields: dict
    section: str
    message_section: str = ""  # message/rfc822: the encapsulated message's header


def is_multipart(body) -> bool:
    return isinstance(body, list) and bool(body) and isinstance(body[0], list)


def walk(body, path: str = "", number: str = "", section: str = "HEADER",
         out: dict | None = None) -> dict[str, Part]:
    """Flattens a BODYSTRUCTURE into {path: Part}. Paths are IMAP part numbers ("" for the
    whole message); the body inside a message/rfc822 part N gets the path "N/" (its own parts
    N/.1, ... are IMAP parts N.1, ...)."""
    out = {} if out is None else out
    if is_multipart(body):
        children = []
        i = 0
        while i < len(body) and isinstance(body[i], list):
            children.append(body[i])
            i += 1
        ext = body[i + 1:]
        f = {"structure": "multipart", "subtype": body[i] if i < len(body) else ABSENT,
             "children": len(children)}
        for j, name in enumerate(("params", "disposition", "language", "location")):
            f[name] = ext[j] if j < len(ext) else ABSENT
        if len(ext) > 4:
            f["extension"] = ext[4:]
        out[path] = Part(f, section)
        for k, child in enumerate(children, 1):
            num = f"{number}.{k}" if number else str(k)
            walk(child, f"{path}.{k}" if path else str(k), num, f"{num}.MIME", out)
        return out
    if not isinstance(body, list) or len(body) < 7:
        out[path] = Part({"structure": f"unparsable {body!r}"[:200]}, section)
        return out
    f = {"structure": "single"}
    message_section = ""
    f.update(zip(("type", "subtype", "params", "id", "description", "encoding", "size"),
                 body[:7]))
    rest = body[7:]
    kind = (lower(body[0]), lower(body[1]))
    if kind == (b"message", b"rfc822") or kind == (b"message", b"global"):
        # RFC 9051 §7.5.2: envelope, body, lines of the encapsulated message.
        if len(rest) >= 3:
            env, inner, f["lines"] = rest[0], rest[1], rest[2]
            rest = rest[3:]
            for name, value in envelope_fields(env).items():
                f[f"envelope.{name}"] = value
            # The encapsulated header is N.HEADER; a lone message/rfc822 body is part 1.
            inner_number = number or "1"
            message_section = f"{inner_number}.HEADER"
            walk(inner, f"{path}/", inner_number, message_section, out)
    elif kind[0] == b"text" and rest:
        f["lines"], rest = rest[0], rest[1:]
    for j, name in enumerate(("md5", "disposition", "language", "location")):
        f[name] = rest[j] if j < len(rest) else ABSENT
    if len(rest) > 4:
        f["extension"] = rest[4:]
    out[path] = Part(f, section, message_section)
    return out


def lower(v):
    if isinstance(v, bytes):
        return v.lower()
    if isinstance(v, str):
        return v.lower().encode()
    return v


# ---------------------------------------------------------------------------------------------
# Classifying a difference


def is_text(v) -> bool:
    return isinstance(v, (bytes, str))


def as_bytes(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def text_kind(pk, dc) -> str:
    """What kind of difference two differing values show (postkeep's first)."""
    if pk == ABSENT or dc == ABSENT:
        return "postkeep leaves it out" if pk == ABSENT else "Dovecot leaves it out"
    if pk is None:
        return "postkeep NIL, Dovecot a value"
    if dc is None:
        return "Dovecot NIL, postkeep a value"
    if isinstance(pk, int) and isinstance(dc, int):
        return f"postkeep {'larger' if pk > dc else 'smaller'} by " + \
            ("1-2" if abs(pk - dc) <= 2 else "more than 2")
    if not (is_text(pk) and is_text(dc)):
        return "different shape (list vs string/number)"
    a, b = as_bytes(pk), as_bytes(dc)
    if b in DOVECOT_PLACEHOLDERS:
        return f"Dovecot's {b.decode()} placeholder"
    if a.lower() == b.lower():
        return "letter case only"
    squash = lambda s: re.sub(rb"\s+", b" ", s).strip()  # noqa: E731
    if squash(a) == squash(b):
        return "whitespace only (folding, CR/LF, tabs, runs)"
    if squash(a).replace(b" ", b"") == squash(b).replace(b" ", b""):
        return "spaces added or dropped"
    ew_a, ew_b = b"=?" in a, b"=?" in b
    if ew_a != ew_b:
        return f"RFC 2047 encoded-word in {'postkeep' if ew_a else 'Dovecot'} only"
    hi_a, hi_b = any(c > 127 for c in a), any(c > 127 for c in b)
    if hi_a != hi_b:
        return f"8-bit/UTF-8 in {'postkeep' if hi_a else 'Dovecot'} only"
    if ew_a and ew_b:
        return "both encoded-words, differently"
    unquote = lambda s: re.sub(rb'[\\"]', b"", s)  # noqa: E731
    if unquote(a) == unquote(b):
        return "quotes or backslashes"
    if b.startswith(a) or a.startswith(b):
        return f"{'postkeep' if len(a) < len(b) else 'Dovecot'} shorter (prefix of the other)"
    if a.strip(b"<>") == b.strip(b"<>") or b"<" + a + b">" == b or b"<" + b + b">" == a:
        return "angle brackets"
    return "value differs"


def address_kind(pk, dc) -> str:
    if pk is None or dc is None or not isinstance(pk, list) or not isinstance(dc, list):
        return text_kind(pk, dc)
    count = "" if len(pk) == len(dc) else \
        (f"postkeep {'more' if len(pk) > len(dc) else 'fewer'} addresses "
         f"({'1' if abs(len(pk) - len(dc)) == 1 else 'several'})")
    if any(isinstance(a, list) and any(x in DOVECOT_PLACEHOLDERS for x in a) for a in dc):
        # Unparsable input: Dovecot marks it (MISSING_MAILBOX, ...); what postkeep made of it
        # is the rest of the kind.
        return "Dovecot marks an unparsable address" + (f"; {count}" if count else "")
    if count:
        return count
    for a, b in zip(pk, dc):
        if a == b:
            continue
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 4):
            return "malformed address"
        for name, x, y in zip(ADDRESS_PARTS, a, b):
            if x != y:
                return f"{name}: {text_kind(x, y)}"
    return "value differs"


def param_dict(v) -> dict | None:
    if not isinstance(v, list) or len(v) % 2:
        return None
    return {lower(k): val for k, val in zip(v[0::2], v[1::2])}


def params_kind(pk, dc) -> str:
    a, b = param_dict([] if pk is None else pk), param_dict([] if dc is None else dc)
    if a is None or b is None:
        return text_kind(pk, dc)
    added = {k: v for k, v in b.items() if k not in a}
    if added and {k: v for k, v in b.items() if k in a} == a and \
            list(added) == [b"charset"] and lower(added[b"charset"]) == b"us-ascii":
        return "Dovecot adds charset=us-ascii (RFC 2045 §5.2 default)"
    if a == b:
        return "attribute names' case or order only"
    if set(a) != set(b):
        only_a = sorted(k.decode(errors="replace") for k in set(a) - set(b))
        only_b = sorted(k.decode(errors="replace") for k in set(b) - set(a))
        bits = []
        if only_a:
            bits.append(f"only postkeep has {','.join(only_a)}")
        if only_b:
            bits.append(f"only Dovecot has {','.join(only_b)}")
        return "; ".join(bits)
    key = next(k for k in a if a[k] != b[k])
    return f"{key.decode(errors='replace')}: {text_kind(a[key], b[key])}"


def disposition_kind(pk, dc) -> str:
    if not (isinstance(pk, list) and isinstance(dc, list) and len(pk) == len(dc) == 2):
        return text_kind(pk, dc)
    if pk[0] != dc[0]:
        return f"type: {text_kind(pk[0], dc[0])}"
    return f"params: {params_kind(pk[1], dc[1])}"


def field_kind(name: str, pk, dc) -> str:
    base = name.split(".")[-1]
    if base in ADDRESS_FIELDS:
        return address_kind(pk, dc)
    if base == "params":
        return params_kind(pk, dc)
    if base == "disposition":
        return disposition_kind(pk, dc)
    return text_kind(pk, dc)


# ---------------------------------------------------------------------------------------------
# Comparing


@dataclass
class Diff:
    uid: int
    field: str  # "envelope.subject", "body.params", "body.envelope.from", ...
    path: str  # part path ("" for the message itself)
    kind: str
    postkeep: object
    dovecot: object
    section: str  # the header to show: BODY.PEEK[section]
    headers: tuple[str, ...]


@dataclass
class Comparison:
    mode: str
    messages: int = 0
    identical: int = 0
    envelope_identical: int = 0
    structure_identical: int = 0
    # Identical once the letter case of case-insensitive tokens is ignored.
    identical_but_case: int = 0
    # Server -> messages whose response holds 8-bit bytes: (in quoted strings, in literals).
    eight_bit: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    parse_errors: list = field(default_factory=list)
    diffs: list[Diff] = field(default_factory=list)


def compare_envelope(uid: int, pk: dict, dc: dict, prefix: str, path: str,
                     section: str) -> list[Diff]:
    diffs = []
    for name in ENVELOPE_FIELDS:
        a, b = pk.get(name, ABSENT), dc.get(name, ABSENT)
        if a == b:
            continue
        if name in ("sender", "reply-to") and a == pk.get("from") and b == dc.get("from"):
            # Both took it from From (RFC 9051 §7.5.2): the From difference, counted there.
            kind = "the From difference (both default it to From)"
        else:
            kind = field_kind(name, a, b)
        diffs.append(Diff(uid, f"{prefix}{name}", path, kind, a, b, section,
                          ENVELOPE_HEADERS[name]))
    return diffs


def compare_message(uid: int, pk: dict, dc: dict) -> list[Diff]:
    diffs = []
    pk_env, dc_env = envelope_fields(pk.get("ENVELOPE")), envelope_fields(dc.get("ENVELOPE"))
    diffs += compare_envelope(uid, pk_env, dc_env, "envelope.", "", "HEADER")
    pk_parts = walk(pk.get("BODYSTRUCTURE"))
    dc_parts = walk(dc.get("BODYSTRUCTURE"))
    skip: list[str] = []  # below a part whose kind differs, every part would differ too
    for path in sorted(set(pk_parts) | set(dc_parts), key=path_key):
        if any(path.startswith(s) for s in skip):
            continue
        a, b = pk_parts.get(path), dc_parts.get(path)
        if a is None or b is None:
            who = "Dovecot" if a is None else "postkeep"
            part = a or b
            diffs.append(Diff(uid, "body.structure", path, f"part only in {who}",
                              a and a.fields.get("structure"), b and b.fields.get("structure"),
                              part.section, PART_HEADERS["structure"]))
            skip.append(path + ".")
            skip.append(path + "/")
            continue
        if a.fields["structure"] != b.fields["structure"]:
            diffs.append(Diff(uid, "body.structure", path,
                              f"postkeep {a.fields['structure']}, Dovecot "
                              f"{b.fields['structure']}", a.fields.get("type"),
                              b.fields.get("type"), b.section, PART_HEADERS["structure"]))
            skip.append(path + ".")
            skip.append(path + "/")
            continue
        env = {"postkeep": {}, "dovecot": {}}
        for name in dict.fromkeys([*a.fields, *b.fields]):
            x, y = a.fields.get(name, ABSENT), b.fields.get(name, ABSENT)
            if name.startswith("envelope."):
                env["postkeep"][name[9:]], env["dovecot"][name[9:]] = x, y
                continue
            if x == y:
                continue
            if name == "children":
                kind = f"postkeep {'more' if x > y else 'fewer'} subparts"
                headers = PART_HEADERS["structure"]
            else:
                kind = field_kind(name, x, y)
                headers = PART_HEADERS.get(name, ())
            diffs.append(Diff(uid, f"body.{name}", path, kind, x, y, b.section, headers))
        if env["postkeep"] or env["dovecot"]:
            diffs += compare_envelope(uid, env["postkeep"], env["dovecot"], "body.envelope.",
                                      path, b.message_section)
    return diffs


def is_case_only(d: Diff) -> bool:
    return (d.field in CASE_INSENSITIVE and d.kind.endswith("letter case only")) or \
        (d.field.endswith(".params") and d.kind == "attribute names' case or order only")


def path_key(path: str) -> list:
    return [int(p) if p.isdigit() else 0 for p in re.split(r"[./]", path) if p != ""] \
        + [path.count("/")]


def compare(mode: str, pk: dict[int, dict], dc: dict[int, dict]) -> Comparison:
    c = Comparison(mode)
    uids = sorted(set(pk) | set(dc))
    c.missing = {"postkeep": sorted(set(dc) - set(pk))[:20],
                 "dovecot": sorted(set(pk) - set(dc))[:20]}
    for uid in uids:
        if uid not in pk or uid not in dc:
            continue
        c.messages += 1
        diffs = compare_message(uid, pk[uid], dc[uid])
        env = any(d.field.startswith("envelope.") for d in diffs)
        body = any(d.field.startswith("body.") for d in diffs)
        c.envelope_identical += not env
        c.structure_identical += not body
        c.identical += not diffs
        c.identical_but_case += all(is_case_only(d) for d in diffs)
        c.diffs += diffs
    for name, fetched in (("postkeep", pk), ("Dovecot", dc)):
        c.eight_bit[name] = tuple(sum(1 for v in fetched.values() if v[key])
                                  for key in EIGHT_BIT)
    return c


# ---------------------------------------------------------------------------------------------
# Fetching


def fetch_all(conn: ib.Conn) -> dict[int, dict]:
    _, untagged = conn.run("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    return fetch_by_uid(untagged)


def capabilities(conn: ib.Conn) -> set[str]:
    _, untagged = conn.run("CAPABILITY")
    caps = set()
    for r in untagged:
        if r[0].upper().startswith(b"* CAPABILITY "):
            caps |= set(r[0][13:].decode().upper().split())
    return caps


def utf8_session(server, ctx, timeout: float) -> ib.Conn:
    """ENABLE is valid in the authenticated state only (RFC 5161 §3.1), so a new session."""
    conn = ib.Conn(server.port, ctx, timeout)
    conn.login()
    _, untagged = conn.run("ENABLE UTF8=ACCEPT")
    if not any(b"UTF8=ACCEPT" in r[0].upper() for r in untagged):
        conn.close()
        raise RuntimeError(f"{server.name} did not enable UTF8=ACCEPT")
    conn.run("SELECT INBOX")
    return conn


def fetch_headers(conn: ib.Conn, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], bytes]:
    """(uid, section) -> the raw bytes of BODY.PEEK[section] (a header)."""
    out = {}
    for uid, section in sorted(wanted):
        _, untagged = conn.run(f"UID FETCH {uid} (BODY.PEEK[{section}])", check=False)
        for r in untagged:
            if FETCH_HEAD.match(r[0]):
                try:
                    _, items = fetch_items(r)
                except ParseError:
                    continue
                value = items.get(f"BODY[{section}]")
                if isinstance(value, bytes):
                    out[(uid, section)] = value
    return out


def header_lines(raw: bytes, names: tuple[str, ...], limit: int = 300) -> list[str]:
    """The named header fields of a raw header block, folded lines kept as they are."""
    fields: list[bytes] = []
    for line in re.split(rb"(?<=\n)", raw):
        if line in (b"\r\n", b"\n", b""):
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    out = []
    for f in fields:
        name = f.split(b":", 1)[0].strip().lower().decode("latin-1")
        if name in names:
            text = f.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
            text = text.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "\\r")
            out.append(text if len(text) <= limit else text[:limit] + " …")
    missing = [n for n in names if not any(
        f.split(b":", 1)[0].strip().lower().decode("latin-1") == n for f in fields)]
    out += [f"(no {n} field)" for n in missing]
    return out


# ---------------------------------------------------------------------------------------------
# Report


def show(v, limit: int = 160) -> str:
    """A parsed value in IMAP-like notation, strings as Python would write them."""
    def fmt(x) -> str:
        if x is None:
            return "NIL"
        if isinstance(x, list):
            return "(" + " ".join(fmt(y) for y in x) + ")"
        if isinstance(x, bytes):
            return '"' + x.decode("utf-8", errors="backslashreplace").replace("\r", "\\r") \
                .replace("\n", "\\n") + '"'
        return str(x)
    text = fmt(v)
    return text if len(text) <= limit else text[:limit] + " …"


def categories(c: Comparison) -> list[tuple[tuple[str, str], list[Diff]]]:
    groups: dict[tuple[str, str], list[Diff]] = {}
    for d in c.diffs:
        groups.setdefault((d.field, d.kind), []).append(d)
    return sorted(groups.items(), key=lambda kv: (-len({d.uid for d in kv[1]}), kv[0]))


def examples(diffs: list[Diff], n: int) -> list[Diff]:
    """n examples from distinct messages, spread over the category (first, middle, last)."""
    by_uid: dict[int, Diff] = {}
    for d in diffs:
        by_uid.setdefault(d.uid, d)
    picked = list(by_uid.values())
    if len(picked) <= n:
        return picked
    step = (len(picked) - 1) / (n - 1) if n > 1 else 0
    return [picked[round(i * step)] for i in range(n)]


def report(comparisons: list[Comparison], meta: dict, headers: dict, n_examples: int) -> str:
    lines = [f"# ENVELOPE / BODYSTRUCTURE: postkeep vs Dovecot, {meta['when']}", "",
             f"`{meta['command']}`; corpus {meta['corpus']}; {meta['dovecot_version']}; "
             f"UTF8=ACCEPT: {meta['utf8']}.", ""]
    for c in comparisons:
        cats = categories(c)
        lines += [f"## {c.mode}", "",
                  f"{c.messages} messages compared: **{c.identical} identical** in both "
                  f"ENVELOPE and BODYSTRUCTURE, **{c.identical_but_case}** once the letter "
                  f"case of type, subtype, encoding, disposition and parameter names is "
                  f"ignored; ENVELOPE identical {c.envelope_identical}, BODYSTRUCTURE identical "
                  f"{c.structure_identical}; {len(c.diffs)} differing fields in {len(cats)} "
                  f"categories.",
                  "",
                  "Messages whose ENVELOPE/BODYSTRUCTURE carry 8-bit bytes, in quoted strings "
                  "/ in literals: " + ", ".join(f"{name} {q} / {lit}" for name, (q, lit)
                                                 in c.eight_bit.items()) + "."]
        if c.missing["postkeep"] or c.missing["dovecot"]:
            lines.append(f"UIDs missing from a server's answer: {c.missing}")
        lines += ["", "| # | field | kind of difference | messages | occurrences |",
                  "| ---: | --- | --- | ---: | ---: |"]
        for i, ((fname, kind), diffs) in enumerate(cats, 1):
            lines.append(f"| {i} | {fname} | {kind} | {len({d.uid for d in diffs})} | "
                         f"{len(diffs)} |")
        lines.append("")
        for i, ((fname, kind), diffs) in enumerate(cats, 1):
            lines.append(f"### {i}. {fname}: {kind}")
            lines.append("")
            for d in examples(diffs, n_examples):
                where = f" part {d.path!r}" if d.path else ""
                lines.append(f"- UID {d.uid}{where}: postkeep `{show(d.postkeep)}`, Dovecot "
                             f"`{show(d.dovecot)}`")
                raw = headers.get((d.uid, d.section))
                if raw is None:
                    lines.append(f"  - (header {d.section} not fetched)")
                else:
                    found = header_lines(raw, d.headers)
                    for h in found[:MAX_HEADER_LINES]:
                        lines.append(f"  - `{h}`" if "`" not in h else f"  - ``{h}``")
                    if len(found) > MAX_HEADER_LINES:
                        lines.append(f"  - (and {len(found) - MAX_HEADER_LINES} more)")
            lines.append("")
    return "\n".join(lines) + "\n"


def diff_json(d: Diff) -> dict:
    def enc(x):
        if isinstance(x, bytes):
            return x.decode("utf-8", errors="backslashreplace")
        if isinstance(x, list):
            return [enc(y) for y in x]
        return x
    return {"uid": d.uid, "field": d.field, "path": d.path, "kind": d.kind,
            "postkeep": enc(d.postkeep), "dovecot": enc(d.dovecot)}


# ---------------------------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postkeep-bin", type=Path, default=ib.REPO_DIR / "target/release/postkeep")
    p.add_argument("--data", type=Path, default=ib.DEFAULT_DATA, help="../shared/data")
    p.add_argument("--messages", type=int, default=10_000, help="mailbox size")
    p.add_argument("--seed", type=int, default=20241122, help="corpus order, as imap_bench")
    p.add_argument("--examples", type=int, default=3, help="examples per category")
    p.add_argument("--timeout", type=float, default=600.0, help="socket timeout, seconds")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--results-dir", type=Path, default=ib.BENCH_DIR / "results")
    return p.parse_args()


def run(args: argparse.Namespace, servers: list, ctx, messages: list[bytes]) -> tuple:
    pk, dc = servers
    bench = ib.Bench(args, servers, ctx)
    bench.info["expected_sizes"] = [ib.wire_size(m) for m in messages]
    # One session each, and the check (RFC822.SIZE of every UID against the corpus and each
    # other) that both numbered the messages alike.
    bench.warm_and_map()
    if bench.uids["postkeep"] != bench.uids["dovecot"]:
        raise RuntimeError("the servers' UID lists differ")
    caps = {s.name: capabilities(bench.sessions[s.name]) for s in servers}
    comparisons = []
    fetched = {}
    for s in servers:
        print(f"  {s.name}: UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)", flush=True)
        fetched[s.name] = fetch_all(bench.sessions[s.name])
    comparisons.append(compare("Without UTF8=ACCEPT", fetched["postkeep"], fetched["dovecot"]))
    utf8_both = all("UTF8=ACCEPT" in caps[s.name] for s in servers)
    utf8 = "both advertise it, compared" if utf8_both else \
        "not compared: advertised by " + (", ".join(
            s.name for s in servers if "UTF8=ACCEPT" in caps[s.name]) or "neither")
    if utf8_both:
        for s in servers:
            print(f"  {s.name}: the same after ENABLE UTF8=ACCEPT", flush=True)
            conn = utf8_session(s, ctx, args.timeout)
            try:
                fetched[s.name] = fetch_all(conn)
            finally:
                conn.close()
        comparisons.append(compare("With UTF8=ACCEPT", fetched["postkeep"],
                                   fetched["dovecot"]))
    wanted = set()
    for c in comparisons:
        for _, diffs in categories(c):
            wanted |= {(d.uid, d.section) for d in examples(diffs, args.examples)}
    print(f"  fetching {len(wanted)} example headers from Dovecot", flush=True)
    headers = fetch_headers(bench.sessions["dovecot"], wanted)
    for conn in bench.sessions.values():
        conn.close()
    return comparisons, headers, utf8


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, ib.interrupt)
    signal.signal(signal.SIGINT, ib.interrupt)
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    messages, parts = ib.build_corpus(args.data, args.messages, args.seed)
    print(f"corpus: {len(messages)} messages ({parts})", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="postkeep-structure-"))
    workdir.chmod(0o755)  # Dovecot's auth and mail processes run unprivileged below it
    pk = dc = None
    try:
        maildir = ib.write_maildir(messages, workdir / "corpus")
        ib.ensure_binary(args)
        pk = ib.Postkeep(args.postkeep_bin, workdir, [])
        pk.prepare(maildir)
        dc = ib.Dovecot(workdir, "performance", 20)
        dc.setup()
        dc.start(pk.cert, pk.key, maildir, pk.password_hash())
        pk.start()
        ctx = ib.client_context()
        for server in (pk, dc):
            ib.wait_for_imaps(server.port, ctx, 60, alive=server.alive)
        comparisons, headers, utf8 = run(args, [pk, dc], ctx, messages)
        meta = {"when": when, "command": "python3 " + " ".join(sys.argv),
                "corpus": f"{len(messages)} messages {parts}",
                "dovecot_version": "Dovecot " + dc.version(), "utf8": utf8}
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        ib.tear_down((pk, dc), workdir, args.keep)
    text = report(comparisons, meta, headers, args.examples)
    print("\n" + text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.results_dir / ("structure-" + time.strftime("%Y%m%dT%H%M%S"))
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "comparisons": [
            {"mode": c.mode, "messages": c.messages, "identical": c.identical,
             "envelope_identical": c.envelope_identical,
             "identical_but_case": c.identical_but_case,
             "eight_bit_quoted_literal": c.eight_bit,
             "structure_identical": c.structure_identical, "missing": c.missing,
             "diffs": [diff_json(d) for d in c.diffs]} for c in comparisons]},
        indent=1) + "\n")
    print(f"results: {stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
