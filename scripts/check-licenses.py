#!/usr/bin/env python3
"""Fail if any crate in the dependency graph has a licence outside the allowlist.

Reads `cargo metadata` and evaluates each package's SPDX licence expression
(SPDX spec, annex D: WITH binds tighter than AND, AND tighter than OR). An OR is
satisfied if either side is, an AND only if both are. The legacy crates.io
separator `/` means OR. GPL-family licences never satisfy an expression, even
if someone later adds them to the allowlist by mistake.

Usage: python3 scripts/check-licenses.py   (from anywhere inside the workspace)
"""

import json
import re
import subprocess
import sys

ALLOWED = {
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "MPL-2.0",
    "BSL-1.0",
    "OpenSSL",
    "Unlicense",
    "CDLA-Permissive-2.0",
}
ALLOWED_LOWER = {a.lower() for a in ALLOWED}

# Copyleft we must never ship, whatever the allowlist says.
DENIED = re.compile(r"^(A|L)?GPL", re.IGNORECASE)

# Packages whose manifest has no `license` field (only `license-file`, or
# nothing): allowed only when listed here with the reason a human checked.
# Format: "crate-name": "licence found in its LICENSE file, and why it is fine".
EXCEPTIONS: dict[str, str] = {}

TOKEN = re.compile(r"\s*(\(|\)|/|[A-Za-z0-9.+\-:]+)")


class ParseError(Exception):
    pass


def tokenize(expr: str) -> list[str]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ParseError(f"unexpected character at {pos}: {expr[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return tokens


class Parser:
    """Recursive descent: or_expr := and_expr (OR|/ and_expr)*;
    and_expr := with_expr (AND with_expr)*; with_expr := atom [WITH id];
    atom := id | '(' or_expr ')'. Returns nested tuples."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end of expression")
        self.pos += 1
        return tok

    def parse(self):
        node = self.or_expr()
        if self.peek() is not None:
            raise ParseError(f"unexpected token {self.peek()!r}")
        return node

    def or_expr(self):
        node = self.and_expr()
        while self.peek() is not None and (self.peek() == "/" or self.peek().upper() == "OR"):
            self.take()
            node = ("OR", node, self.and_expr())
        return node

    def and_expr(self):
        node = self.with_expr()
        while self.peek() is not None and self.peek().upper() == "AND":
            self.take()
            node = ("AND", node, self.with_expr())
        return node

    def with_expr(self):
        node = self.atom()
        if self.peek() is not None and self.peek().upper() == "WITH":
            self.take()
            exception = self.take()
            if not is_identifier(exception):
                raise ParseError(f"bad exception id {exception!r}")
            if node[0] != "ID":
                raise ParseError("WITH must follow a licence id")
            node = ("WITH", node[1], exception)
        return node

    def atom(self):
        tok = self.take()
        if tok == "(":
            node = self.or_expr()
            if self.take() != ")":
                raise ParseError("missing ')'")
            return node
        if not is_identifier(tok):
            raise ParseError(f"unexpected token {tok!r}")
        return ("ID", tok)


def is_identifier(tok: str) -> bool:
    return tok not in ("(", ")", "/") and tok.upper() not in ("AND", "OR", "WITH")


def id_allowed(lic: str) -> bool:
    if DENIED.match(lic):
        return False
    # "X+" means "X or any later version": X itself is then an available choice.
    base = lic[:-1] if lic.endswith("+") else lic
    return base.lower() in ALLOWED_LOWER


def satisfied(node) -> bool:
    kind = node[0]
    if kind == "ID":
        return id_allowed(node[1])
    if kind == "WITH":
        lic, exc = node[1], node[2]
        if DENIED.match(lic):
            return False
        # An exception only grants extra permissions, so an allowed base stays allowed.
        return f"{lic} WITH {exc}".lower() in ALLOWED_LOWER or id_allowed(lic)
    if kind == "OR":
        return satisfied(node[1]) or satisfied(node[2])
    if kind == "AND":
        return satisfied(node[1]) and satisfied(node[2])
    raise AssertionError(f"unknown node {kind}")


def check_expression(expr: str) -> tuple[bool, str]:
    """Returns (ok, reason)."""
    try:
        tree = Parser(tokenize(expr)).parse()
    except ParseError as e:
        return False, f"unparseable licence expression ({e})"
    if satisfied(tree):
        return True, ""
    return False, "not satisfiable by the allowlist"


def cargo_metadata() -> dict:
    base = ["cargo", "metadata", "--format-version", "1"]
    proc = subprocess.run(base + ["--locked"], capture_output=True, text=True)
    if proc.returncode != 0:
        print("check-licenses: `cargo metadata --locked` failed, retrying without --locked",
              file=sys.stderr)
        proc = subprocess.run(base, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit("check-licenses: cargo metadata failed")
    return json.loads(proc.stdout)


def main() -> int:
    packages = cargo_metadata()["packages"]
    failures = []
    for pkg in sorted(packages, key=lambda p: (p["name"], p["version"])):
        name, version, lic = pkg["name"], pkg["version"], pkg.get("license")
        if not lic:
            if name in EXCEPTIONS:
                continue
            where = pkg.get("license_file") or "no license-file either"
            failures.append(f"{name} {version}: no licence field ({where}); "
                            "check it by hand and add it to EXCEPTIONS with a reason")
            continue
        ok, reason = check_expression(lic)
        if not ok:
            failures.append(f"{name} {version}: {lic!r}: {reason}")
    for line in failures:
        print(f"  DENIED {line}")
    if failures:
        print(f"check-licenses: FAILED: {len(failures)} of {len(packages)} packages "
              "have licences outside the allowlist")
        return 1
    print(f"check-licenses: OK: all {len(packages)} packages have allowed licences")
    return 0


def self_test() -> None:
    """Cheap guard that the evaluator itself is right; runs on every invocation."""
    cases = {
        "MIT": True,
        "MIT OR Apache-2.0": True,
        "MIT/Apache-2.0": True,
        "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT": True,
        "ISC AND (Apache-2.0 OR ISC) AND Apache-2.0 AND MIT": True,
        "(MIT OR Apache-2.0) AND Unicode-3.0": True,
        "MIT OR Apache-2.0 OR LGPL-2.1-or-later": True,
        "MIT AND GPL-3.0": False,
        "GPL-3.0": False,
        "AGPL-3.0-only": False,
        "LGPL-2.1-or-later": False,
        "GPL-2.0 WITH Classpath-exception-2.0": False,
        "MIT AND (Apache-2.0 OR SSPL-1.0)": True,
        "MIT AND (BUSL-1.1 OR SSPL-1.0)": False,
        "LicenseRef-Proprietary": False,
        "MIT OR": False,
        "(MIT": False,
        "": False,
    }
    for expr, want in cases.items():
        got, _ = check_expression(expr)
        if got != want:
            sys.exit(f"check-licenses: self-test failed for {expr!r}: got {got}, want {want}")


if __name__ == "__main__":
    self_test()
    sys.exit(main())
