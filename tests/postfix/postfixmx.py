"""A real Postfix as the remote mail exchanger of test domains, for the acceptance tests
(tests/acceptance/test_outbound.py): a Python handle on postfix-mx.sh beside this file, which
crates/outbound/tests drive the same way from Rust.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "postfix-mx.sh"


def lines(items: list[str] | tuple[str, ...]) -> str:
    return "".join(f"{item}\n" for item in items)


class PostfixMx:
    """Postfix on 127.0.0.1:`port`, the MX of `domains`, with mailboxes for `users`; every
    other address of the domains gets 550 5.1.1. `access` holds access(5) lines answered to
    RCPT TO, e.g. "busy@remote.test 450 4.2.1 Mailbox busy"."""

    def __init__(self, port: int, domains: list[str], users: list[str],
                 access: list[str] | None = None):
        # Its own directory right under the system's temp dir: Postfix's unprivileged
        # processes must reach it, and pytest's temp dirs are private (mode 0700).
        self.dir = Path(tempfile.mkdtemp(prefix="postkeep-postfix-"))
        self.port = port
        self.domains = domains
        (self.dir / "users").write_text(lines(users))
        (self.dir / "access").write_text(lines(access or []))

    def start(self) -> None:
        self._script("start", str(self.dir), str(self.port), *self.domains)

    def stop(self) -> None:
        """Stops Postfix and removes its directory."""
        self._script("stop", str(self.dir))
        shutil.rmtree(self.dir, ignore_errors=True)

    def set_access(self, access: list[str]) -> None:
        """Replaces the access table and makes Postfix use it."""
        (self.dir / "access").write_text(lines(access))
        self._script("reload", str(self.dir))

    def maildir(self, address: str) -> list[bytes]:
        """Every message Postfix filed for `address`, oldest first."""
        local, domain = address.split("@")
        new = self.dir / "mail" / domain / local / "Maildir" / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir()) if p.is_file()]

    def queue_is_empty(self) -> bool:
        """Nothing accepted is still on its way into a mailbox (postqueue's JSON listing is
        empty)."""
        postqueue = shutil.which("postqueue", path="/usr/sbin:/usr/bin") or "postqueue"
        out = subprocess.run([postqueue, "-c", str(self.dir / "postfix"), "-j"],
                             capture_output=True, check=True, timeout=30)
        return not [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def log(self) -> str:
        try:
            return (self.dir / "postfix.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _script(self, *args: str) -> None:
        proc = subprocess.run([str(SCRIPT), *args], capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{SCRIPT.name} {' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stdout.decode(errors='replace')}"
                               f"{proc.stderr.decode(errors='replace')}\n"
                               f"postfix.log: {self.log()[-3000:]}")
