#!/usr/bin/env python3
"""IMAP benchmark: postkeep against Dovecot, side by side, over TLS, on one 10,000-message mailbox.

Both servers get the same Maildir (postkeep through `postkeep import`, Dovecot by copying it into
its Maildir/cur/), the same account and the same argon2id password hash, and run at the same
time. Each operation is timed several times, alternating the servers, and reported as medians
with the ratio postkeep / Dovecot (below 1: postkeep is faster or smaller):

  connect + TLS, LOGIN, SELECT INBOX       fresh connection each time
  FETCH 1:* (FLAGS ENVELOPE)               the whole mailbox
  UID FETCH BODY.PEEK[] x 100              100 random messages, one command each
  UID FETCH BODY.PEEK[] (100 in one)       100 other random messages, one command
  UID SEARCH TEXT <word>                   result counts of both servers compared
  UID STORE +FLAGS (\\Flagged) on 1000      undone (-FLAGS.SILENT) outside the timing
  UID MOVE of 1000                         a fresh range each time, into another mailbox
  memory with N idle connections in IDLE   summed RSS (and PSS) of all the server's processes

Python 3.11 standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import glob
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_DATA = REPO_DIR.parent / "shared" / "data"
DOVECOT_SCRIPT = BENCH_DIR / "dovecot-imap.sh"
DOMAIN = "bench.test"
USER = f"u@{DOMAIN}"
PASSWORD = "bench-password"
MOVE_TARGET = "BenchMoved"
# Ports other engineers' tests use; never pick one of these.
RESERVED_PORTS = range(2525, 2536)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SA_SETS = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
# First delivery time of the corpus Maildir: file i is named and dated BASE_TIME + i, so both
# servers (postkeep sorts by file name, Dovecot by the time in the name) number them alike.
BASE_TIME = 1_600_000_000
# postkeep admits at most 50 IMAP connections per client IP by default ([imap]
# max_connections_per_ip): the idle test spreads its connections over several loopback source
# addresses, for both servers alike.
CONNS_PER_SOURCE_IP = 40
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
FETCH_UID_SIZE = re.compile(rb"^\* (\d+) FETCH \(.*?UID (\d+).*?RFC822\.SIZE (\d+)")
FETCH_SIZE_UID = re.compile(rb"^\* (\d+) FETCH \(.*?RFC822\.SIZE (\d+).*?UID (\d+)")


# ---------------------------------------------------------------------------------------------
# Corpus: one Maildir for both servers


def read_message(path: Path) -> bytes:
    """A corpus file as a message: only a leading mbox `From ` line is dropped."""
    raw = path.read_bytes()
    if raw.startswith(b"From "):
        _, _, raw = raw.partition(b"\n")
    return raw


def base_corpus(data: Path) -> tuple[list[bytes], dict]:
    """SpamAssassin 6046 + phishing_pot 1000 + Enron 884 (docs/imap-plan.md §4 step 11)."""
    parts: dict[str, list[bytes]] = {"spamassassin": [], "phishing_pot": [], "enron": []}
    for name in SA_SETS:
        parts["spamassassin"] += [read_message(p) for p in sorted((data / "spamassassin" / name)
                                                                  .iterdir()) if p.is_file()]
    parts["phishing_pot"] = [read_message(p) for p in
                             sorted((data / "phishing_pot" / "email").glob("*.eml"))]
    parts["enron"] = [read_message(Path(p)) for p in
                      sorted(glob.glob(str(data / "enron_with_categories" / "*" / "*.txt")))]
    for name, msgs in parts.items():
        if not msgs:
            sys.exit(f"corpus part {name} missing under {data} (see {data}/README.md)")
    counts = {name: len(msgs) for name, msgs in parts.items()}
    return parts["spamassassin"] + parts["phishing_pot"] + parts["enron"], counts


def copy_of(message: bytes, k: int) -> bytes:
    """Copy number k of a message: `X-Bench-Copy: k` in front, `-copy` (`-copyK` beyond the
    first round) appended to the Message-ID's left part so that the copies stay distinct."""
    suffix = b"-copy" if k == 1 else b"-copy%d" % k
    nl = b"\r\n" if b"\r\n" in message[:2000] else b"\n"
    head_end = message.find(nl + nl)
    head = message if head_end < 0 else message[:head_end]
    m = re.search(rb"(?im)^message-id:[ \t]*<([^@>\r\n]*)", head)
    if m:
        message = message[:m.end(1)] + suffix + message[m.end(1):]
    return b"X-Bench-Copy: %d" % k + nl + message


def build_corpus(data: Path, n: int, seed: int) -> tuple[list[bytes], dict]:
    base, counts = base_corpus(data)
    sa = counts["spamassassin"]
    messages = list(base)
    copies = 0
    while len(messages) < n:
        # The first SpamAssassin messages again, as the plan's corpus does (2070 for 10,000).
        messages.append(copy_of(base[copies % sa], copies // sa + 1))
        copies += 1
    counts["copies"] = copies
    # A fixed shuffle: a smaller --messages still mixes the sources.
    random.Random(seed).shuffle(messages)
    return messages[:n], counts


def write_maildir(messages: list[bytes], root: Path) -> Path:
    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for i, msg in enumerate(messages):
        t = BASE_TIME + i
        path = maildir / "cur" / f"{t}.M{i:06d}P1.bench:2,"
        path.write_bytes(msg)
        os.utime(path, (t, t))
    return maildir


def wire_size(message: bytes) -> int:
    """The RFC822.SIZE both servers should report: every line ending as CRLF."""
    return len(message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


# ---------------------------------------------------------------------------------------------
# A minimal IMAP client (raw, so that client-side parsing stays small next to the servers)


class ImapError(Exception):
    def __init__(self, exchange: str):
        super().__init__(exchange)
        self.exchange = exchange


class Conn:
    def __init__(self, port: int, ctx: ssl.SSLContext, timeout: float,
                 source_ip: str | None = None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                       source_address=(source_ip, 0) if source_ip else None)
        try:
            self.sock = ctx.wrap_socket(raw)
        except BaseException:
            raw.close()
            raise
        self.file = self.sock.makefile("rb", buffering=1 << 16)
        self.greeting = self.file.readline()
        if not self.greeting.startswith(b"* OK"):
            raise ImapError(f"S: {self.greeting!r}")
        self.n = 0

    def send(self, command: str) -> bytes:
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + command.encode() + b"\r\n")
        return tag

    def read_response(self) -> list[bytes]:
        """One response: its first line, then any literal and the line continuing after it."""
        line = self.file.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        parts = [line]
        while line.endswith(b"}\r\n"):
            m = LITERAL.search(line)
            if not m:
                break
            parts.append(self.file.read(int(m.group(1))))
            line = self.file.readline()
            parts.append(line)
        return parts

    def run(self, command: str, check: bool = True) -> tuple[bytes, list[list[bytes]]]:
        """Sends a command, reads up to its tagged response; (tagged line, untagged responses)."""
        tag = self.send(command)
        untagged = []
        while True:
            resp = self.read_response()
            if resp[0].startswith(tag + b" "):
                status = resp[0]
                break
            untagged.append(resp)
        if check and not status.startswith(tag + b" OK"):
            raise ImapError(exchange(command, status, untagged))
        return status, untagged

    def login(self) -> None:
        self.run(f'LOGIN "{USER}" "{PASSWORD}"')

    def idle(self) -> None:
        tag = self.send("IDLE")
        while True:
            resp = self.read_response()
            if resp[0].startswith(b"+"):
                return
            if resp[0].startswith(tag):
                raise ImapError(exchange("IDLE", resp[0], []))

    def close(self) -> None:
        # The reader holds a reference to the socket: both must go for the fd to close.
        for closable in (self.file, self.sock):
            try:
                closable.close()
            except OSError:
                pass


def exchange(command: str, status: bytes, untagged: list[list[bytes]]) -> str:
    """The exact exchange, for the report: command, first untagged lines, tagged response."""
    if command.startswith("LOGIN"):
        command = "LOGIN <user> <password>"
    lines = [f"C: {command}"]
    lines += [f"S: {r[0].decode(errors='replace').rstrip()}" for r in untagged[:5]]
    if len(untagged) > 5:
        lines.append(f"S: ... ({len(untagged) - 5} more untagged responses)")
    lines.append(f"S: {status.decode(errors='replace').rstrip()}")
    return "\n".join(lines)


def client_context() -> ssl.SSLContext:
    # TLS 1.3 only, as both servers are configured; the benchmark's own self-signed certificate
    # is not verified (loopback, and it is the same certificate for both).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def count_fetch(untagged: list[list[bytes]]) -> int:
    return sum(1 for r in untagged if re.match(rb"\* \d+ FETCH ", r[0]))


def search_result(untagged: list[list[bytes]]) -> list[int]:
    for r in untagged:
        if r[0].startswith(b"* SEARCH"):
            return [int(x) for x in r[0][8:].split()]
    return []


def bodies(untagged: list[list[bytes]]) -> dict[int, bytes]:
    """UID -> body literal of `UID FETCH ... BODY[]` responses."""
    out = {}
    for r in untagged:
        m = re.search(rb"UID (\d+)", b"".join(r[0::2]))
        if m and len(r) >= 2:
            out[int(m.group(1))] = r[1]
    return out


# ---------------------------------------------------------------------------------------------
# /proc: processes, CPU, memory


def process_table() -> dict[int, int]:
    """pid -> ppid of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        table[int(entry)] = int(text[text.rfind(")") + 2:].split()[1])
    return table


def tree(root: int) -> list[int]:
    table = process_table()
    wanted, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in table.items():
            if ppid == parent and pid not in wanted:
                wanted.add(pid)
                frontier.append(pid)
    return sorted(p for p in wanted if p in table)


def cpu_ms(pids: list[int]) -> float:
    """utime + stime + reaped children's, summed, in ms."""
    ticks = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        ticks += sum(int(x) for x in fields[11:15])
    return ticks * 1000 / CLK_TCK


def kib_field(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Memory:
    processes: int
    threads: int
    rss_kib: int
    pss_kib: int
    by_name: dict[str, int]


def memory(pids: list[int]) -> Memory:
    rss = pss = threads = 0
    by_name: dict[str, int] = {}
    for pid in pids:
        rss += kib_field(f"/proc/{pid}/status", "VmRSS:")
        threads += kib_field(f"/proc/{pid}/status", "Threads:")
        pss += kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = "?"
        by_name[name] = by_name.get(name, 0) + 1
    return Memory(len(pids), threads, rss, pss, by_name)


# ---------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def wait_for_imaps(port: int, ctx: ssl.SSLContext, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"server exited before listening on 127.0.0.1:{port}")
        try:
            Conn(port, ctx, 5).close()
            return
        except (OSError, ImapError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no IMAP server on 127.0.0.1:{port} after {timeout:.0f} s")
            time.sleep(0.1)


class Postkeep:
    name = "postkeep"

    def __init__(self, binary: Path, workdir: Path, serve_env: list[str]):
        self.binary = binary
        self.data = workdir / "postkeep"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, NO_COLOR="1")
        self.serve_env = dict(self.env, **dict(kv.split("=", 1) for kv in serve_env))
        self.import_s = 0.0

    def prepare(self, maildir: Path) -> None:
        self.cli("init", "--data", str(self.data), "--domain", DOMAIN, "--dev")
        self.configure()
        self.cli("user", "add", USER, "--data", str(self.data), "--password-stdin",
                 stdin=(PASSWORD + "\n").encode())
        t0 = time.perf_counter()
        out = self.cli("import", "--data", str(self.data), USER, str(maildir), timeout=3600)
        self.import_s = time.perf_counter() - t0
        print(f"  postkeep import: {out.strip().splitlines()[-1]} in {self.import_s:.1f} s",
              flush=True)

    def configure(self) -> None:
        """imaps on a free port, smtp moved to another (never the dev ports), nothing else."""
        path = self.data / "postkeep.toml"
        text = path.read_text()
        text = re.sub(r'(?m)^smtp\s*=\s*".*"$', f'smtp = "127.0.0.1:{free_port()}"', text)
        text = re.sub(r"(?m)^(submissions?|imaps?|pop3s|https)\s*=", r"# \1 =", text)
        text, n = re.subn(r"(?m)^\[listen\]\s*$",
                          f'[listen]\nimaps = "127.0.0.1:{self.port}"', text)
        if n != 1:
            raise RuntimeError(f"no [listen] section in {path}")
        path.write_text(text)

    @property
    def cert(self) -> Path:
        return self.data / "tls" / "cert.pem"

    @property
    def key(self) -> Path:
        return self.data / "tls" / "key.pem"

    def password_hash(self) -> str:
        """The argon2id hash postkeep stored, for Dovecot to verify the very same one."""
        db = sqlite3.connect(f"file:{self.data / 'postkeep.db'}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT password_hash FROM accounts WHERE address = ?",
                             (USER,)).fetchone()
        finally:
            db.close()
        if not row or not str(row[0]).startswith("$argon2id$"):
            raise RuntimeError("no argon2id hash for the benchmark account in postkeep.db")
        return row[0]

    def start(self) -> None:
        self.stderr = open(self.data / "serve.stderr", "wb")
        self.proc = subprocess.Popen([str(self.binary), "serve", "--data", str(self.data)],
                                     stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     env=self.serve_env)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return tree(self.proc.pid) if self.alive() else []

    def cli(self, *args: str, stdin: bytes | None = None, timeout: float = 120) -> str:
        done = subprocess.run([str(self.binary), *args], input=stdin, env=self.env,
                              capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"postkeep {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout.decode(errors='replace')}"
                               f"{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=45)  # the server gives sessions 30 s to finish
            except subprocess.TimeoutExpired:
                print(f"  ! postkeep (pid {proc.pid}) ignored SIGTERM for 45 s: killed",
                      file=sys.stderr)
                proc.kill()
                proc.wait()


class Dovecot:
    name = "dovecot"

    def __init__(self, workdir: Path, login_mode: str, max_conn: int):
        self.port = free_port()
        self.started = False
        self.env = dict(os.environ, DCIMAP_DIR=str(workdir / "dovecot"), DCIMAP_USER=USER,
                        DCIMAP_LOGIN_MODE=login_mode, DCIMAP_MAX_CONN=str(max_conn))
        self.master: int | None = None

    def setup(self) -> None:
        subprocess.run(["bash", str(DOVECOT_SCRIPT), "setup"], check=True)

    def version(self) -> str:
        return subprocess.run(["dovecot", "--version"], capture_output=True,
                              text=True).stdout.strip()

    def start(self, cert: Path, key: Path, maildir: Path, password_hash: str) -> None:
        env = dict(self.env, DCIMAP_PASS="{ARGON2ID}" + password_hash)
        self.started = True
        subprocess.run(["bash", str(DOVECOT_SCRIPT), "start", str(self.port), str(cert),
                        str(key), str(maildir)], check=True, env=env)
        pid = subprocess.run(["bash", str(DOVECOT_SCRIPT), "pid"], capture_output=True,
                             text=True, env=self.env).stdout.strip()
        self.master = int(pid)

    def alive(self) -> bool:
        return self.master is not None and Path(f"/proc/{self.master}").exists()

    def pids(self) -> list[int]:
        return tree(self.master) if self.alive() else []

    def stop(self) -> None:
        if self.started:
            subprocess.run(["bash", str(DOVECOT_SCRIPT), "stop"], check=False, env=self.env)
            self.started = False


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Sample:
    ms: float
    cpu_ms: float
    info: dict = field(default_factory=dict)


@dataclass
class Bench:
    args: argparse.Namespace
    servers: list
    ctx: ssl.SSLContext
    uids: dict[str, list[int]] = field(default_factory=dict)
    sessions: dict[str, Conn] = field(default_factory=dict)
    samples: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def record(self, server, op: str, ms: float, cpu: float, **info) -> None:
        self.samples.setdefault(op, {}).setdefault(server.name, []).append(Sample(ms, cpu, info))

    def error(self, server, op: str, err: Exception) -> None:
        text = err.exchange if isinstance(err, ImapError) else f"{type(err).__name__}: {err}"
        print(f"\n  ! {server.name} {op}:\n    " + text.replace("\n", "\n    "), flush=True)
        self.errors.append({"server": server.name, "operation": op, "exchange": text})

    def timed(self, server, op: str, conn: Conn, command: str, **info):
        """Runs one command, records wall time and server CPU; returns its untagged responses
        (None after an error, which is recorded with the exact exchange)."""
        self.settle()
        pids = server.pids()
        cpu0 = cpu_ms(pids)
        t0 = time.perf_counter()
        try:
            _, untagged = conn.run(command)
        except (ImapError, OSError) as e:
            self.error(server, op, e)
            return None
        ms = (time.perf_counter() - t0) * 1000
        self.record(server, op, ms, cpu_ms(server.pids()) - cpu0, **info)
        return untagged

    def settle(self, quiet_ms: float = 100, limit_s: float = 3) -> None:
        """Waits until no server has used CPU for `quiet_ms`, so that work one server does after
        its last reply (Dovecot writing its index cache, a commit's fsync) is not timed as the
        other's."""
        pids = [pid for server in self.servers for pid in server.pids()]
        deadline = time.monotonic() + limit_s
        last, quiet_since = cpu_ms(pids), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = cpu_ms(pids)
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
                return

    # -- setup

    def open_session(self, server) -> Conn:
        conn = Conn(server.port, self.ctx, self.args.timeout)
        conn.login()
        conn.run("SELECT INBOX")
        return conn

    def warm_and_map(self) -> None:
        """One session per server; FETCH 1:* (ENVELOPE) to warm (timed, reported apart); then
        the UID -> size map of both, which must agree with each other and with the corpus."""
        for server in self.servers:
            conn = self.open_session(server)
            self.sessions[server.name] = conn
            untagged = self.timed(server, "warm-up FETCH 1:* (ENVELOPE)", conn,
                                  "FETCH 1:* (ENVELOPE)")
            if untagged is None:
                raise RuntimeError(f"{server.name}: warm-up FETCH failed")
            _, untagged = conn.run("FETCH 1:* (UID RFC822.SIZE)")
            sizes = {}
            for r in untagged:
                m = FETCH_UID_SIZE.match(r[0])
                if m:
                    sizes[int(m.group(2))] = int(m.group(3))
                    continue
                m = FETCH_SIZE_UID.match(r[0])
                if m:
                    sizes[int(m.group(3))] = int(m.group(2))
            self.uids[server.name] = sorted(sizes)
            self.info.setdefault("sizes", {})[server.name] = [sizes[u] for u in sorted(sizes)]
        self.check_mapping()

    def check_mapping(self) -> None:
        expected = self.info.pop("expected_sizes")
        sizes = self.info.pop("sizes")
        report = {}
        for name, got in sizes.items():
            if len(got) != len(expected):
                raise RuntimeError(f"{name} holds {len(got)} messages, expected {len(expected)}")
            off = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
            report[name] = {"messages": len(got), "size_differs_from_crlf_count": len(off),
                            "examples": [(i + 1, got[i], expected[i]) for i in off[:5]]}
            # A handful may differ (bare CR, NUL): a wholesale shift means the order differs.
            if len(off) > len(expected) // 100:
                raise RuntimeError(f"{name}: {len(off)} sizes differ from the corpus order; "
                                   f"the servers did not number the messages alike")
        names = list(sizes)
        if len(names) == 2:
            a, b = sizes[names[0]], sizes[names[1]]
            report["servers_differ"] = sum(1 for x, y in zip(a, b) if x != y)
        self.info["mapping"] = report

    # -- operations

    def login_select(self, server) -> None:
        pids = server.pids()
        cpu0 = cpu_ms(pids)
        try:
            t0 = time.perf_counter()
            conn = Conn(server.port, self.ctx, self.args.timeout)
            t1 = time.perf_counter()
            conn.login()
            t2 = time.perf_counter()
            _, untagged = conn.run("SELECT INBOX")
            t3 = time.perf_counter()
        except (ImapError, OSError) as e:
            self.error(server, "LOGIN+SELECT", e)
            return
        cpu = cpu_ms(server.pids()) - cpu0
        exists = next((int(r[0].split()[1]) for r in untagged if r[0].endswith(b"EXISTS\r\n")),
                      None)
        self.record(server, "connect + TLS handshake", (t1 - t0) * 1000, float("nan"))
        self.record(server, "LOGIN", (t2 - t1) * 1000, float("nan"))
        self.record(server, "SELECT INBOX", (t3 - t2) * 1000, float("nan"), exists=exists)
        self.record(server, "LOGIN+SELECT", (t3 - t1) * 1000, cpu)
        try:
            conn.run("LOGOUT", check=False)
        except OSError:
            pass
        conn.close()

    def fetch_envelopes(self, server) -> None:
        untagged = self.timed(server, "FETCH 1:* (FLAGS ENVELOPE)", self.sessions[server.name],
                              "FETCH 1:* (FLAGS ENVELOPE)")
        if untagged is not None:
            self.last_sample("FETCH 1:* (FLAGS ENVELOPE)", server).info.update(
                responses=count_fetch(untagged),
                bytes=sum(len(p) for r in untagged for p in r))

    def fetch_bodies_each(self, server, uids: list[int]) -> None:
        conn = self.sessions[server.name]
        op = f"UID FETCH BODY.PEEK[] x {len(uids)} (one command each)"
        pids = server.pids()
        cpu0 = cpu_ms(pids)
        got: dict[int, bytes] = {}
        t0 = time.perf_counter()
        for uid in uids:
            try:
                _, untagged = conn.run(f"UID FETCH {uid} (BODY.PEEK[])")
            except (ImapError, OSError) as e:
                self.error(server, op, e)
                return
            got.update(bodies(untagged))
        ms = (time.perf_counter() - t0) * 1000
        self.record(server, op, ms, cpu_ms(server.pids()) - cpu0,
                    bytes=sum(map(len, got.values())), missing=len(set(uids) - set(got)))
        self.info.setdefault("body_digests", {}).setdefault(server.name, {}).update(
            {u: hashlib.sha256(b).hexdigest() for u, b in got.items()})

    def fetch_bodies_batch(self, server, uids: list[int]) -> None:
        op = f"UID FETCH BODY.PEEK[] ({len(uids)} in one command)"
        untagged = self.timed(server, op, self.sessions[server.name],
                              f"UID FETCH {','.join(map(str, uids))} (BODY.PEEK[])")
        if untagged is not None:
            got = bodies(untagged)
            self.last_sample(op, server).info.update(bytes=sum(map(len, got.values())),
                                                     missing=len(set(uids) - set(got)))

    def search(self, server) -> None:
        op = f"UID SEARCH TEXT {self.args.search_word}"
        untagged = self.timed(server, op, self.sessions[server.name],
                              f"UID SEARCH TEXT {self.args.search_word}")
        if untagged is not None:
            found = search_result(untagged)
            self.last_sample(op, server).info.update(count=len(found))
            self.info.setdefault("search_uids", {})[server.name] = found

    def store(self, server, uid_range: str) -> None:
        conn = self.sessions[server.name]
        untagged = self.timed(server, f"UID STORE +FLAGS (\\Flagged) x {self.args.store}", conn,
                              f"UID STORE {uid_range} +FLAGS (\\Flagged)")
        if untagged is not None:
            self.last_sample(f"UID STORE +FLAGS (\\Flagged) x {self.args.store}",
                             server).info.update(responses=count_fetch(untagged))
        try:
            conn.run(f"UID STORE {uid_range} -FLAGS.SILENT (\\Flagged)")
        except (ImapError, OSError) as e:
            self.error(server, "undo STORE", e)

    def move(self, server, uid_range: str) -> None:
        op = f"UID MOVE x {self.args.move}"
        untagged = self.timed(server, op, self.sessions[server.name],
                              f"UID MOVE {uid_range} {MOVE_TARGET}")
        if untagged is not None:
            expunged = sum(1 for r in untagged if r[0].endswith(b"EXPUNGE\r\n"))
            vanished = sum(1 for r in untagged if r[0].startswith(b"* VANISHED"))
            self.last_sample(op, server).info.update(expunge_responses=expunged,
                                                     vanished_responses=vanished)

    def last_sample(self, op: str, server) -> Sample:
        return self.samples[op][server.name][-1]

    # -- idle connections

    def idle_memory(self, server) -> dict:
        n = self.args.idle_connections
        conns: list[Conn] = []
        lock = threading.Lock()
        failures: list[str] = []
        time.sleep(1)
        before = memory(server.pids())

        def open_one(i: int) -> None:
            ip_index = i // CONNS_PER_SOURCE_IP
            source = f"127.0.{1 + ip_index // 250}.{1 + ip_index % 250}"
            try:
                conn = Conn(server.port, self.ctx, self.args.timeout, source_ip=source)
                conn.login()
                conn.run("SELECT INBOX")
                conn.idle()
            except (ImapError, OSError) as e:
                with lock:
                    failures.append(e.exchange if isinstance(e, ImapError)
                                    else f"{type(e).__name__}: {e}")
                return
            with lock:
                conns.append(conn)

        # Half, then the rest: the second half's growth is the marginal cost of a session, free
        # of one-time growth (allocator arenas, thread pools) that the first logins cause.
        half = n // 2
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(open_one, range(half)))
            time.sleep(2)
            opened_mid = len(conns)
            mid = memory(server.pids())
            list(pool.map(open_one, range(half, n)))
        setup_s = time.perf_counter() - t0
        time.sleep(2)  # let the last sessions settle into IDLE
        after = memory(server.pids())
        for conn in conns:
            conn.close()
        result = {
            "connections": len(conns), "failed": len(failures),
            "failure_examples": sorted(set(failures))[:5], "setup_s": setup_s,
            "before": before.__dict__, "mid": mid.__dict__, "after": after.__dict__,
            "rss_kib_per_conn": (after.rss_kib - before.rss_kib) / max(len(conns), 1),
            "pss_kib_per_conn": (after.pss_kib - before.pss_kib) / max(len(conns), 1),
            "rss_kib_per_conn_second_half":
                (after.rss_kib - mid.rss_kib) / max(len(conns) - opened_mid, 1),
            "pss_kib_per_conn_second_half":
                (after.pss_kib - mid.pss_kib) / max(len(conns) - opened_mid, 1),
        }
        for text in result["failure_examples"]:
            self.errors.append({"server": server.name, "operation": "idle connection",
                                "exchange": text})
        # Until the server has noticed the closed connections (Dovecot's imap processes exit).
        deadline = time.monotonic() + 20
        time.sleep(3)
        while len(server.pids()) > before.processes and time.monotonic() < deadline:
            time.sleep(0.5)
        result["after_close_rss_kib"] = memory(server.pids()).rss_kib
        return result


# ---------------------------------------------------------------------------------------------
# The run


def ranges(uids: list[int], count: int, k: int, from_end: bool = False) -> str:
    """The k-th block of `count` UIDs (from the start or from the end), as `first:last`."""
    if from_end:
        block = uids[len(uids) - (k + 1) * count:len(uids) - k * count]
    else:
        start = (k * count) % max(len(uids) - count + 1, 1)
        block = uids[start:start + count]
    return f"{block[0]}:{block[-1]}"


def run(bench: Bench) -> dict:
    args = bench.args
    bench.warm_and_map()
    if "dovecot" in bench.uids and "postkeep" in bench.uids and \
            bench.uids["dovecot"] != bench.uids["postkeep"]:
        raise RuntimeError("the servers' UID lists differ")
    uids = next(iter(bench.uids.values()))
    rng = random.Random(args.seed)
    repeat = args.repeat
    for rep in range(repeat):
        # Alternate which server goes first, so that machine noise and caches hit both alike.
        order = bench.servers if rep % 2 == 0 else bench.servers[::-1]
        each, batch = rng.sample(uids, args.bodies), rng.sample(uids, args.bodies)
        store_range = ranges(uids, args.store, rep)
        print(f"  repetition {rep + 1}/{repeat}", flush=True)
        for server in order:
            bench.login_select(server)
        for server in order:
            bench.fetch_envelopes(server)
        for server in order:
            bench.fetch_bodies_each(server, each)
        for server in order:
            bench.fetch_bodies_batch(server, batch)
        for server in order:
            bench.search(server)
        for server in order:
            bench.store(server, store_range)
    idle = {}
    if args.idle_connections:
        for server in bench.servers:
            print(f"  {server.name}: {args.idle_connections} idle connections ...", end=" ",
                  flush=True)
            idle[server.name] = bench.idle_memory(server)
            r = idle[server.name]
            print(f"{r['connections']} open, {r['rss_kib_per_conn']:.0f} KiB RSS each, "
                  f"set up in {r['setup_s']:.0f} s", flush=True)
    # MOVE last: it empties part of INBOX. Fresh ranges from the end, none moved twice.
    for server in bench.servers:
        try:
            bench.sessions[server.name].run(f"CREATE {MOVE_TARGET}", check=False)
        except OSError as e:
            bench.error(server, "CREATE", e)
    for rep in range(repeat):
        order = bench.servers if rep % 2 == 0 else bench.servers[::-1]
        move_range = ranges(uids, args.move, rep, from_end=True)
        for server in order:
            bench.move(server, move_range)
    return idle


def summarise(bench: Bench, idle: dict) -> dict:
    names = [s.name for s in bench.servers]
    rows = []
    for op, per_server in bench.samples.items():
        row = {"operation": op}
        for name in names:
            samples = per_server.get(name, [])
            row[name] = {
                "runs": len(samples),
                "median_ms": statistics.median(s.ms for s in samples) if samples else None,
                "min_ms": min((s.ms for s in samples), default=None),
                "max_ms": max((s.ms for s in samples), default=None),
                "median_cpu_ms": median_or_none([s.cpu_ms for s in samples]),
                "info": samples[-1].info if samples else {},
            }
        pk, dc = row.get("postkeep", {}), row.get("dovecot", {})
        if pk.get("median_ms") and dc.get("median_ms"):
            row["ratio"] = pk["median_ms"] / dc["median_ms"]
        rows.append(row)
    return {"rows": rows, "idle": idle}


def median_or_none(xs: list[float]) -> float | None:
    xs = [x for x in xs if x == x]  # drop NaN (phases timed without CPU)
    return statistics.median(xs) if xs else None


def search_comparison(bench: Bench, messages: list[bytes], uids: list[int]) -> dict:
    """Both servers' hit lists for SEARCH TEXT, and where they differ, whether the raw bytes
    of the message contain the word (a hint: encoded bodies hide it from a byte search)."""
    found = bench.info.get("search_uids", {})
    word = bench.args.search_word.lower().encode()
    raw_hits = {uid for uid, msg in zip(uids, messages) if word in msg.lower()}
    out = {"raw_bytes_contain_word": len(raw_hits),
           "counts": {name: len(v) for name, v in found.items()}}
    if "postkeep" in found and "dovecot" in found:
        pk, dc = set(found["postkeep"]), set(found["dovecot"])
        by_uid = dict(zip(uids, messages))
        for name, only in (("only_postkeep", pk - dc), ("only_dovecot", dc - pk)):
            out[name] = sorted(only)
            out[name + "_raw_contains"] = len(only & raw_hits)
            kinds: dict[str, int] = {}
            for uid in only:
                kind = where_word(by_uid[uid], bench.args.search_word)
                kinds[kind] = kinds.get(kind, 0) + 1
            out[name + "_where"] = kinds
    return out


class _TextOnly(HTMLParser):
    """The character data of an HTML document, that of <head> (title, style) kept apart."""

    HEAD = {"head", "title", "style", "script"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.head: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.HEAD:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[self.open.index(tag):]

    def handle_data(self, data: str) -> None:
        (self.head if self.open else self.text).append(data)


def where_word(raw: bytes, word: str) -> str:
    """Where Python's email package finds `word` in a message (to explain SEARCH TEXT
    differences): decoded header, text/plain, the text of text/html, only in text/html markup
    (tags, attributes, URLs), another part, or nowhere."""
    word = word.lower()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # the stdlib parser gives up on some real-world mail
        return "unparsed by Python"
    found = []
    try:
        headers = " ".join(str(v) for _, v in msg.items()).lower()
    except Exception:  # undecodable header: the raw header block instead
        headers = raw.split(b"\n\n", 1)[0].decode("latin-1").lower()
    if word in headers:
        found.append("header")
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            continue
        text = payload.decode(part.get_content_charset() or "latin-1", errors="replace").lower()
        if word not in text:
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            parser = _TextOnly()
            parser.feed(text)
            if word in "".join(parser.text):
                found.append("text/html text")
            elif word in "".join(parser.head):
                found.append("text/html <head>/<title>/<style> only")
            else:
                found.append("text/html markup only")
        else:
            found.append(ctype)
    return ", ".join(sorted(set(found))) or "nowhere (per Python)"


def body_comparison(bench: Bench) -> dict:
    d = bench.info.get("body_digests", {})
    if "postkeep" not in d or "dovecot" not in d:
        return {}
    common = set(d["postkeep"]) & set(d["dovecot"])
    differ = sorted(u for u in common if d["postkeep"][u] != d["dovecot"][u])
    return {"compared": len(common), "differ": len(differ), "differing_uids": differ[:20]}


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(summary: dict, meta: dict) -> str:
    lines = ["Medians; the ratio is postkeep's time over Dovecot's (below 1: postkeep faster). "
             "CPU: the server's utime+stime over the operation, all its processes "
             "(10 ms clock ticks).", "",
             "| operation | postkeep ms | Dovecot ms | postkeep / Dovecot | postkeep CPU ms | "
             "Dovecot CPU ms | notes |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in summary["rows"]:
        pk, dc = row.get("postkeep", {}), row.get("dovecot", {})
        notes = []
        for name, r in (("postkeep", pk), ("Dovecot", dc)):
            info = r.get("info") or {}
            bits = [f"{k}={v}" for k, v in info.items() if k in
                    ("count", "responses", "exists", "missing", "expunge_responses",
                     "vanished_responses") and v is not None]
            if info.get("bytes"):
                bits.append(f"{info['bytes'] / 1e6:.1f} MB")
            if bits:
                notes.append(f"{name}: {', '.join(bits)}")
        ratio = f"**{row['ratio']:.2f}**" if "ratio" in row else "-"
        lines.append(f"| {row['operation']} | {fmt(pk.get('median_ms'))} | "
                     f"{fmt(dc.get('median_ms'))} | {ratio} | {fmt(pk.get('median_cpu_ms'), '.0f')} "
                     f"| {fmt(dc.get('median_cpu_ms'), '.0f')} | {'; '.join(notes)} |")
    idle = summary["idle"]
    if idle:
        lines += ["", "| idle connections in IDLE | processes (threads) before → after | "
                  "RSS before MiB | RSS after MiB | RSS KiB per connection | "
                  "PSS KiB per connection | 2nd half only: RSS / PSS KiB per connection | "
                  "RSS MiB after closing |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in idle.items():
            b, a = r["before"], r["after"]
            lines.append(
                f"| {name}: {r['connections']} open ({r['failed']} failed) | "
                f"{b['processes']} ({b['threads']}) → {a['processes']} ({a['threads']}) | "
                f"{b['rss_kib'] / 1024:.1f} | {a['rss_kib'] / 1024:.1f} | "
                f"{r['rss_kib_per_conn']:.0f} | {r['pss_kib_per_conn']:.0f} | "
                f"{r['rss_kib_per_conn_second_half']:.0f} / "
                f"{r['pss_kib_per_conn_second_half']:.0f} | "
                f"{r['after_close_rss_kib'] / 1024:.1f} |")
        if "postkeep" in idle and "dovecot" in idle and idle["dovecot"]["rss_kib_per_conn"]:
            pk, dc = idle["postkeep"], idle["dovecot"]
            lines.append("")
            lines.append(f"Memory per idle connection, postkeep / Dovecot: RSS "
                         f"**{pk['rss_kib_per_conn'] / dc['rss_kib_per_conn']:.3f}**, PSS "
                         f"**{pk['pss_kib_per_conn'] / max(dc['pss_kib_per_conn'], 1e-9):.3f}**"
                         f"; second half only: RSS "
                         f"**{ratio_or_dash(pk, dc, 'rss_kib_per_conn_second_half')}**, PSS "
                         f"**{ratio_or_dash(pk, dc, 'pss_kib_per_conn_second_half')}**.")
    return "\n".join(lines) + "\n"


def ratio_or_dash(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.3f}" if b.get(key) else "-"


def header_text(meta: dict) -> str:
    c = meta["corpus"]
    return (f"IMAP benchmark, {meta['when']}: `{meta['command']}`\n\n"
            f"Corpus: {c['messages']} messages, {c['bytes'] / 1e6:.1f} MB ({c['parts']}); "
            f"{meta['repeat']} repetitions, medians; TLS 1.3 (imaps) on 127.0.0.1; "
            f"{meta['dovecot_version']} imap-login mode `{meta['login_mode']}`; "
            f"{meta['cpus']} CPUs, load average {meta['load_start']:.1f} at the start, "
            f"{meta['load_end']:.1f} at the end; both servers and the client side by side.\n")


def details_text(out: dict) -> str:
    lines = []
    s = out.get("search", {})
    if s:
        lines.append(f"SEARCH TEXT {out['meta']['search_word']}: counts {s.get('counts')}; raw "
                     f"bytes contain the word in {s['raw_bytes_contain_word']} messages.")
        for name in ("only_postkeep", "only_dovecot"):
            if name in s:
                lines.append(f"{name.replace('_', ' ').capitalize()}: {len(s[name])} (raw bytes "
                             f"contain it in {s[name + '_raw_contains']}; where: "
                             f"{s[name + '_where']}), UIDs {s[name][:20]}.")
    b = out.get("bodies", {})
    if b:
        lines.append(f"Bodies compared byte for byte: {b['compared']}, differing: {b['differ']} "
                     f"{b['differing_uids'] or ''}")
    m = out.get("mapping", {})
    if m:
        lines.append(f"RFC822.SIZE vs the corpus (LF -> CRLF): {json.dumps(m)}")
    if out["errors"]:
        lines.append(f"\nErrors ({len(out['errors'])}):")
        for e in out["errors"][:20]:
            lines.append(f"\n{e['server']}, {e['operation']}:\n```\n{e['exchange']}\n```")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postkeep-bin", type=Path, default=REPO_DIR / "target/release/postkeep")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="../shared/data")
    p.add_argument("--messages", type=int, default=10_000, help="mailbox size")
    p.add_argument("--repeat", type=int, default=5, help="repetitions of each timed operation")
    p.add_argument("--bodies", type=int, default=100, help="random messages fetched whole")
    p.add_argument("--store", type=int, default=1000, help="messages per STORE")
    p.add_argument("--move", type=int, default=1000,
                   help="messages per MOVE (--repeat x --move must not exceed --messages)")
    p.add_argument("--search-word", default="mortgage",
                   help="UID SEARCH TEXT <word> (letters and digits)")
    p.add_argument("--idle-connections", type=int, default=1000, help="0 skips the idle test")
    p.add_argument("--login-mode", choices=("performance", "security"), default="performance",
                   help="Dovecot imap-login: service_count=0 (performance) or 1 (security)")
    p.add_argument("--targets", default="postkeep,dovecot")
    p.add_argument("--postkeep-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for `postkeep serve` (e.g. RUST_LOG=debug, "
                        "MALLOC_ARENA_MAX=2); repeatable")
    p.add_argument("--seed", type=int, default=20241122)
    p.add_argument("--timeout", type=float, default=600.0, help="socket timeout, seconds")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args()
    if args.repeat * args.move > args.messages:
        p.error("--repeat x --move exceeds --messages (each MOVE takes fresh messages)")
    if max(args.store, args.bodies) > args.messages:
        p.error("--store and --bodies must not exceed --messages")
    if any("=" not in kv for kv in args.postkeep_env):
        p.error("--postkeep-env takes KEY=VALUE")
    if not re.fullmatch(r"[A-Za-z0-9]+", args.search_word):
        p.error("--search-word: letters and digits only (sent as an atom)")
    return args


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(need, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < need:
            print(f"  ! open-file limit {hard} < {need}: the idle test may fail",
                  file=sys.stderr)


def ensure_binary(args: argparse.Namespace) -> None:
    if args.postkeep_bin.exists():
        return
    if args.no_build:
        sys.exit(f"{args.postkeep_bin} missing: run `cargo build --release -p postkeep` first")
    subprocess.run(["cargo", "build", "--release", "-p", "postkeep"], cwd=REPO_DIR, check=True)


def interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def tear_down(servers, workdir: Path, keep: bool) -> None:
    """Stops the servers that were started; removes the working directory unless it is kept."""
    for server in servers:
        if server is not None:
            server.stop()
    if keep:
        print(f"(kept {workdir})", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    targets = args.targets.split(",")
    # Client and servers inherit it: 1 client socket per connection here, several per
    # connection in Dovecot (login proxy, imap process), 1 in postkeep.
    raise_fd_limit(args.idle_connections * 4 + 4096)
    load_start = os.getloadavg()[0]
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    messages, parts = build_corpus(args.data, args.messages, args.seed)
    print(f"corpus: {len(messages)} messages, {sum(map(len, messages)) / 1e6:.1f} MB ({parts})",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="postkeep-imap-bench-"))
    workdir.chmod(0o755)  # Dovecot's auth and mail processes run unprivileged below it
    servers: list = []
    pk = dc = None
    try:
        maildir = write_maildir(messages, workdir / "corpus")
        ensure_binary(args)
        pk = Postkeep(args.postkeep_bin, workdir, args.postkeep_env)
        pk.prepare(maildir)  # also for a Dovecot-only run: its certificate and hash are used
        if "dovecot" in targets:
            dc = Dovecot(workdir, args.login_mode, args.idle_connections + 200)
            dc.setup()
            dc.start(pk.cert, pk.key, maildir, pk.password_hash())
        if "postkeep" in targets:
            pk.start()
            servers.append(pk)
        if dc:
            servers.append(dc)
        ctx = client_context()
        for server in servers:
            wait_for_imaps(server.port, ctx, 60, alive=server.alive)
        bench = Bench(args, servers, ctx)
        bench.info["expected_sizes"] = [wire_size(m) for m in messages]
        idle = run(bench)
        uids = next(iter(bench.uids.values()))
        out = {
            "meta": {
                "when": when, "command": "python3 " + " ".join([sys.argv[0], *sys.argv[1:]]),
                "cpus": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()[0],
                "corpus": {"messages": len(messages), "bytes": sum(map(len, messages)),
                           "parts": parts},
                "repeat": args.repeat, "search_word": args.search_word,
                "login_mode": args.login_mode, "postkeep_env": args.postkeep_env,
                "dovecot_version": "Dovecot " + dc.version() if dc else "no Dovecot",
                "postkeep_import_s": pk.import_s,
            },
            **summarise(bench, idle),
            "search": search_comparison(bench, messages, uids),
            "bodies": body_comparison(bench),
            "mapping": bench.info.get("mapping"),
            "errors": bench.errors,
        }
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        tear_down((pk, dc), workdir, args.keep)
    table = markdown(out, out["meta"])
    report = header_text(out["meta"]) + "\n" + table + "\n" + details_text(out)
    print("\n" + report)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.results_dir / ("imap-" + time.strftime("%Y%m%dT%H%M%S"))
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(report)
    print(f"results: {stem}.md, {stem}.json")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
