#!/usr/bin/env python3
"""SMTP ingest benchmark: postkeep against Postfix delivering to Dovecot over LMTP.

Delivers the SpamAssassin corpus with 1, 8 and 64 concurrent clients (one persistent plain-SMTP
connection each, on loopback, no TLS) and reports messages/s, p50/p99 latency (MAIL FROM to the
250 after DATA), server CPU per message, and for postkeep the share of its CPU time spent
compressing + sealing blobs (the server's `seal_ms` at shutdown over its CPU time).

"End-to-end" means the message is in the mailbox: for postkeep that is the 250 itself (it
answers 250 only once the message is filed, fsync'd and committed); for Postfix it is the time
until Dovecot's maildir holds every accepted message, so Postfix's figures include the wait for
its queue to drain after the last 250.

Python 3.11 standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_CORPUS = REPO_DIR.parent / "shared" / "data" / "spamassassin"
CORPUS_SETS = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
PFDC_SCRIPT = BENCH_DIR / "postfix-dovecot.sh"
DOMAIN = "bench.test"
RECIPIENT = f"u@{DOMAIN}"
SENDER = "sender@example.org"
# Ports other engineers' tests use; never pick one of these.
RESERVED_PORTS = range(2525, 2536)
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A hung server must not hang the benchmark: every socket read gives up after this.
SOCKET_TIMEOUT_S = 60.0
# How long Postfix may take to drain its queue into Dovecot after the last 250.
DRAIN_TIMEOUT_S = 600.0


@dataclass
class RunResult:
    server: str
    clients: int
    messages: int
    accepted: int = 0
    # Answered with a permanent 5xx (e.g. postkeep refuses bare CR, RFC 5321 §2.3.8).
    rejected: int = 0
    rejected_samples: list[str] = field(default_factory=list)
    # Neither accepted nor rejected: 4xx, broken connection, timeout, or never sent.
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    accept_s: float = 0.0
    end_to_end_s: float = 0.0
    accept_rate: float = 0.0
    end_to_end_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    # CPU of the load generator (this process) during the run: it shares the machine.
    client_cpu_ms: float = 0.0
    load_avg_1m: float = 0.0
    server_cpu_ms: float | None = None
    cpu_ms_per_msg: float | None = None
    seal_ms: int | None = None
    crypto_share: float | None = None
    seal_us_per_msg: float | None = None
    delivered: int | None = None


# ---------------------------------------------------------------------------------------------
# Corpus


def load_corpus(root: Path) -> list[bytes]:
    """Every corpus message as SMTP DATA bytes: mbox `From ` line dropped, CRLF line ends."""
    messages = []
    for name in CORPUS_SETS:
        folder = root / name
        if not folder.is_dir():
            sys.exit(f"corpus folder missing: {folder} (see /work/shared/data/README.md)")
        for path in sorted(folder.iterdir()):
            if path.is_file():
                messages.append(to_wire(path.read_bytes()))
    # A fixed shuffle so that a run limited to its first N messages still mixes ham and spam.
    random.Random(20240601).shuffle(messages)
    return messages


def to_wire(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        _, _, raw = raw.partition(b"\n")
    # Bare CRs are left alone on purpose: they are part of the real-world corpus.
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---------------------------------------------------------------------------------------------
# Load generator


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def wait_for_port(port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server exited before listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@dataclass
class ClientLog:
    latencies: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished_at: float = 0.0
    client_cpu_s: float = 0.0


def client(port: int, batch: list[bytes], start: threading.Barrier, log: ClientLog) -> None:
    """One client: connect and EHLO, wait for the common start, then deliver `batch` in turn."""
    try:
        conn = smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.test",
                            timeout=SOCKET_TIMEOUT_S)
        conn.ehlo()
    except (OSError, smtplib.SMTPException) as e:
        log.errors.append(f"connect: {type(e).__name__}: {e}")
        start.wait()
        return
    eight_bit = conn.has_extn("8bitmime")
    start.wait()
    for msg in batch:
        opts = ["BODY=8BITMIME"] if eight_bit and not msg.isascii() else []
        t0 = time.perf_counter()
        try:
            conn.sendmail(SENDER, [RECIPIENT], msg, mail_options=opts)
        except smtplib.SMTPRecipientsRefused as e:
            log.errors.append(f"RCPT refused: {e.recipients}")
            continue
        except smtplib.SMTPResponseException as e:
            where = log.rejected if 500 <= e.smtp_code < 600 else log.errors
            text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) \
                else str(e.smtp_error)
            where.append(f"{e.smtp_code} {text}")
            continue
        except (OSError, smtplib.SMTPException) as e:
            # A broken connection ends this client: reported, never papered over by reconnecting.
            log.errors.append(f"{type(e).__name__}: {e}")
            break
        log.latencies.append(time.perf_counter() - t0)
    log.finished_at = time.perf_counter()
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        pass


def drive(port: int, messages: list[bytes], clients: int) -> tuple[list[ClientLog], float, float]:
    """Runs the clients; returns their logs, the start time and the last client's finish time."""
    cpu0 = time.process_time()
    # The timeout keeps a client that died before the start from hanging everyone else.
    start = threading.Barrier(clients + 1, timeout=SOCKET_TIMEOUT_S)
    logs = [ClientLog() for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(port, messages[i::clients], start, logs[i]),
                         daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    t1 = max((log.finished_at for log in logs), default=t0)
    logs[0].client_cpu_s = time.process_time() - cpu0
    return logs, t0, max(t1, t0)


def summarise(result: RunResult, logs: list[ClientLog], elapsed: float) -> None:
    latencies = [x for log in logs for x in log.latencies]
    rejected = [e for log in logs for e in log.rejected]
    errors = [e for log in logs for e in log.errors]
    result.accepted = len(latencies)
    result.rejected = len(rejected)
    result.rejected_samples = rejected[:50]
    result.errors = result.messages - result.accepted - result.rejected
    result.error_samples = errors[:50]
    result.client_cpu_ms = sum(log.client_cpu_s for log in logs) * 1000
    result.load_avg_1m = os.getloadavg()[0]
    result.accept_s = elapsed
    result.accept_rate = result.accepted / elapsed if elapsed > 0 else 0.0
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        result.p50_ms = cuts[49] * 1000
        result.p99_ms = cuts[98] * 1000
    elif latencies:
        result.p50_ms = result.p99_ms = latencies[0] * 1000


# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc


def proc_stat(pid: int) -> tuple[int, list[str]] | None:
    """(ppid, fields after the command name) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()
    return int(rest[1]), rest


def tree_cpu_ms(root: int) -> float:
    """CPU time of `root` (with its reaped children) and of every live descendant, in ms."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat:
                table[int(entry)] = stat
    wanted, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in wanted:
                wanted.add(pid)
                frontier.append(pid)
    ticks = 0
    for pid in wanted:
        if pid in table:
            fields = table[pid][1]
            # Fields 14-17 of /proc/PID/stat: utime stime cutime cstime (index 11.. after state).
            ticks += sum(int(x) for x in fields[11:15])
    return ticks * 1000 / CLK_TCK


# ---------------------------------------------------------------------------------------------
# postkeep


class Postkeep:
    name = "postkeep"

    def __init__(self, binary: Path, keep: bool):
        self.binary = binary
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self.data: Path | None = None

    def run(self, messages: list[bytes], clients: int) -> RunResult:
        result = RunResult(self.name, clients, len(messages))
        self.data = Path(tempfile.mkdtemp(prefix="postkeep-bench-"))
        data = self.data / "data"
        port = free_port()
        env = dict(os.environ, NO_COLOR="1")
        self._cmd(["init", "--data", str(data), "--domain", DOMAIN, "--dev"], env)
        configure_postkeep(data / "postkeep.toml", port, clients)
        self._cmd(["user", "add", RECIPIENT, "--data", str(data), "--password-stdin"], env,
                  stdin=b"pw\n")
        stderr_path = self.data / "serve.stderr"
        with open(stderr_path, "wb") as err, open(self.data / "serve.stdout", "wb") as out:
            self.proc = subprocess.Popen([str(self.binary), "serve", "--data", str(data)],
                                         stdout=out, stderr=err, env=env)
        wait_for_port(port, 30, alive=lambda: self.proc.poll() is None)
        logs, t0, t1 = drive(port, messages, clients)
        summarise(result, logs, t1 - t0)
        # 250 = filed, fsync'd and committed: accept is end-to-end.
        result.end_to_end_s, result.end_to_end_rate = result.accept_s, result.accept_rate
        result.server_cpu_ms = tree_cpu_ms(self.proc.pid)
        self.stop()
        result.seal_ms = parse_seal_ms(stderr_path.read_bytes())
        if result.seal_ms is None:
            print(f"  ! no seal_ms line in {stderr_path}", file=sys.stderr)
        add_cpu_figures(result)
        result.delivered = self.count_stored(data, env)
        return result

    def count_stored(self, data: Path, env: dict) -> int:
        """Messages in the mailbox, by exporting it after the run (outside the timing)."""
        out = self.data / "export"
        self._cmd(["export", RECIPIENT, str(out), "--data", str(data), "--format", "maildir"],
                  env)
        return count_maildir(out)

    def _cmd(self, args: list[str], env: dict, stdin: bytes | None = None) -> None:
        done = subprocess.run([str(self.binary), *args], input=stdin, env=env,
                              capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"postkeep {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout.decode(errors='replace')}"
                               f"{done.stderr.decode(errors='replace')}")

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

    def cleanup(self) -> None:
        self.stop()
        if self.data is not None and not self.keep:
            shutil.rmtree(self.data, ignore_errors=True)
        elif self.data is not None:
            print(f"  (kept {self.data})", file=sys.stderr)
        self.data = None


def configure_postkeep(path: Path, port: int, clients: int) -> None:
    """Loopback SMTP on `port`, no other listener, limits raised for the load."""
    text = path.read_text()
    text = re.sub(r'(?m)^smtp\s*=\s*".*"$', f'smtp = "127.0.0.1:{port}"', text)
    # Commented-out until they exist; make sure no other listener (on dev ports) would start.
    text = re.sub(r'(?m)^(submissions?|imaps?|pop3s|https)\s*=', r"# \1 =", text)
    per_ip = max(200, clients * 2)
    text = re.sub(r"(?m)^max_connections_per_ip\s*=.*$", f"max_connections_per_ip = {per_ip}",
                  text)
    text = re.sub(r"(?m)^max_connections\s*=\s*(\d+)$",
                  lambda m: f"max_connections = {max(int(m.group(1)), per_ip)}", text)
    text = re.sub(r"(?m)^max_recipients\s*=\s*(\d+)$",
                  lambda m: f"max_recipients = {max(int(m.group(1)), 10)}", text)
    if f'"127.0.0.1:{port}"' not in text:
        raise RuntimeError(f"no `smtp = \"host:port\"` line to rewrite in {path}")
    path.write_text(text)


def parse_seal_ms(stderr: bytes) -> int | None:
    found = re.findall(rb"seal_ms=(\d+)", ANSI.sub(b"", stderr))
    return int(found[-1]) if found else None


def add_cpu_figures(result: RunResult) -> None:
    if result.server_cpu_ms is not None and result.accepted:
        result.cpu_ms_per_msg = result.server_cpu_ms / result.accepted
    if result.seal_ms is not None:
        if result.server_cpu_ms:
            result.crypto_share = result.seal_ms / result.server_cpu_ms
        if result.accepted:
            result.seal_us_per_msg = result.seal_ms * 1000 / result.accepted


# ---------------------------------------------------------------------------------------------
# Postfix + Dovecot


class PostfixDovecot:
    name = "postfix+dovecot"

    def __init__(self):
        self.started = False
        self.dir = Path(os.environ.get("PFDC_DIR", "/tmp/postkeep-bench-pfdc"))

    def setup(self) -> None:
        subprocess.run(["bash", str(PFDC_SCRIPT), "setup"], check=True)

    def run(self, messages: list[bytes], clients: int) -> RunResult:
        result = RunResult(self.name, clients, len(messages))
        port = free_port()
        self.started = True
        subprocess.run(["bash", str(PFDC_SCRIPT), "start", str(port)], check=True,
                       stdout=subprocess.DEVNULL)
        maildir = Path(subprocess.run(["bash", str(PFDC_SCRIPT), "maildir"], check=True,
                                      capture_output=True, text=True).stdout.strip())
        wait_for_port(port, 30)
        logs, t0, t1 = drive(port, messages, clients)
        summarise(result, logs, t1 - t0)
        delivered, t2 = wait_for_maildir(maildir, result.accepted)
        result.delivered = delivered
        result.end_to_end_s = t2 - t0
        result.end_to_end_rate = delivered / result.end_to_end_s if result.end_to_end_s else 0.0
        result.server_cpu_ms = sum(tree_cpu_ms(pid) for pid in self.master_pids())
        add_cpu_figures(result)
        self.stop()
        return result

    def master_pids(self) -> list[int]:
        pids = []
        for pidfile in (self.dir / "spool/pid/master.pid", self.dir / "dovecot-run/master.pid"):
            try:
                pids.append(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                print(f"  ! cannot read {pidfile}: server CPU is incomplete", file=sys.stderr)
        return pids

    def stop(self) -> None:
        if self.started:
            subprocess.run(["bash", str(PFDC_SCRIPT), "stop"], check=False)
            self.started = False

    def cleanup(self) -> None:
        self.stop()


def count_maildir(maildir: Path) -> int:
    total = 0
    for sub in ("new", "cur"):
        try:
            total += sum(1 for e in os.scandir(maildir / sub) if e.is_file())
        except FileNotFoundError:
            pass
    return total


def wait_for_maildir(maildir: Path, expected: int) -> tuple[int, float]:
    """Polls until the maildir holds `expected` messages; returns (count, time reached)."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while True:
        count = count_maildir(maildir)
        now = time.perf_counter()
        if count >= expected or now > deadline:
            if count < expected:
                print(f"  ! maildir holds {count} of {expected} after {DRAIN_TIMEOUT_S:.0f} s",
                      file=sys.stderr)
            return count, now
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(results: list[RunResult]) -> None:
    head = (f"{'server':<16} {'clients':>7} {'messages':>8} {'rejected':>8} {'errors':>6} "
            f"{'accept/s':>9} {'e2e msgs/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/msg':>10} "
            f"{'client ms/msg':>13} {'load':>5}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.server:<16} {r.clients:>7} {r.messages:>8} {r.rejected:>8} {r.errors:>6} "
              f"{r.accept_rate:>9.1f} {r.end_to_end_rate:>10.1f} {r.p50_ms:>8.2f} "
              f"{r.p99_ms:>8.2f} {fmt(r.cpu_ms_per_msg, '>10.2f')} "
              f"{r.client_cpu_ms / max(r.messages, 1):>13.2f} {r.load_avg_1m:>5.1f}")


def print_crypto(results: list[RunResult]) -> None:
    rows = [r for r in results if r.seal_ms is not None]
    if not rows:
        return
    print("\npostkeep compress+seal (seal_ms from the server at shutdown):")
    print(f"{'clients':>7} {'seal ms':>8} {'server cpu ms':>13} {'crypto share':>12} "
          f"{'seal us/msg':>11}")
    for r in rows:
        share = fmt(None if r.crypto_share is None else r.crypto_share * 100, ">11.1f")
        print(f"{r.clients:>7} {r.seal_ms:>8} {fmt(r.server_cpu_ms, '>13.0f')} {share}% "
              f"{fmt(r.seal_us_per_msg, '>11.1f')}")


def ratios(results: list[RunResult]) -> list[dict]:
    by_key = {(r.server, r.clients): r for r in results}
    out = []
    for clients in sorted({r.clients for r in results}):
        pk, pf = by_key.get(("postkeep", clients)), by_key.get(("postfix+dovecot", clients))
        if not pk or not pf or not pf.end_to_end_rate or not pf.accept_rate:
            continue
        out.append({
            "clients": clients,
            "end_to_end": pk.end_to_end_rate / pf.end_to_end_rate,
            "vs_postfix_accept": pk.accept_rate / pf.accept_rate,
            "p99": pk.p99_ms / pf.p99_ms if pf.p99_ms else None,
        })
    return out


def print_ratios(rows: list[dict]) -> None:
    if not rows:
        return
    print("\npostkeep / postfix+dovecot (same run, side by side):")
    print(f"{'clients':>7} {'e2e rate':>9} {'vs accept':>9} {'p99':>6}")
    for row in rows:
        print(f"{row['clients']:>7} {row['end_to_end']:>8.2f}x {row['vs_postfix_accept']:>8.2f}x "
              f"{fmt(row['p99'], '>5.2f')}x")


def print_counted(lines: list[str]) -> None:
    for line, n in Counter(lines).items():
        print(f"  {n} x {line}")


def print_errors(results: list[RunResult]) -> None:
    for r in results:
        if r.rejected:
            print(f"\n{r.server}, {r.clients} clients: {r.rejected} message(s) rejected (5xx):")
            print_counted(r.rejected_samples)
        if r.errors or r.error_samples:
            print(f"\n{r.server}, {r.clients} clients: {r.errors} message(s) neither accepted "
                  f"nor rejected; first errors:")
            print_counted(r.error_samples)
        if r.delivered is not None and r.delivered < r.accepted:
            print(f"\n{r.server}, {r.clients} clients: only {r.delivered} of {r.accepted} "
                  f"accepted messages reached the maildir")


# ---------------------------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postkeep-bin", type=Path, default=REPO_DIR / "target/release/postkeep")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--clients", default="1,8,64", help="comma-separated concurrencies")
    p.add_argument("--targets", default="postkeep,postfix+dovecot")
    p.add_argument("--limit", type=int, help="messages per run, for every concurrency")
    p.add_argument("--limit-single", type=int, default=1500,
                   help="messages for the 1-client runs when --limit is not given")
    p.add_argument("--no-build", action="store_true",
                   help="do not run `cargo build --release -p postkeep` if the binary is missing")
    p.add_argument("--keep", action="store_true", help="keep postkeep's data directories")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    return p.parse_args()


def ensure_binary(args: argparse.Namespace) -> None:
    if args.postkeep_bin.exists():
        return
    if args.no_build:
        sys.exit(f"{args.postkeep_bin} missing: run `cargo build --release -p postkeep` first")
    print(f"{args.postkeep_bin} missing: running `cargo build --release -p postkeep`", flush=True)
    subprocess.run(["cargo", "build", "--release", "-p", "postkeep"], cwd=REPO_DIR, check=True)


def make_targets(args: argparse.Namespace) -> list:
    targets = []
    for name in args.targets.split(","):
        if name == "postkeep":
            ensure_binary(args)
            targets.append(Postkeep(args.postkeep_bin, args.keep))
        elif name == "postfix+dovecot":
            target = PostfixDovecot()
            target.setup()
            targets.append(target)
        else:
            sys.exit(f"unknown target {name!r}")
    return targets


def interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    # SIGTERM takes the same way out as Ctrl-C, so that the finally below stops the servers.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background (SIG_IGN)
    concurrencies = [int(c) for c in args.clients.split(",")]
    load_at_start = os.getloadavg()
    corpus = load_corpus(args.corpus)
    targets = make_targets(args)
    print(f"corpus: {len(corpus)} messages, {sum(map(len, corpus)) / 1e6:.1f} MB, "
          f"from {args.corpus}")
    print("transport: plain SMTP (no TLS) over loopback 127.0.0.1, one persistent connection "
          "per client; latency = MAIL FROM to the 250 after DATA")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_at_start[0]:.1f}; the load "
          "generator runs on the same machine\n", flush=True)
    results: list[RunResult] = []
    try:
        # Targets alternate at each concurrency so that machine noise hits both alike.
        for clients in concurrencies:
            limit = args.limit or (args.limit_single if clients == 1 else len(corpus))
            messages = corpus[:limit]
            for target in targets:
                print(f"{target.name}: {clients} client(s), {len(messages)} messages ...",
                      end=" ", flush=True)
                try:
                    result = target.run(messages, clients)
                finally:
                    target.cleanup()
                results.append(result)
                print(f"{result.end_to_end_rate:.1f} msgs/s end to end"
                      + (f", {result.errors} errors" if result.errors else ""), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        for target in targets:
            target.cleanup()
    print()
    print_table(results)
    print_crypto(results)
    rows = ratios(results)
    print_ratios(rows)
    print_errors(results)
    write_json(args, corpus, results, rows, load_at_start)
    return 1 if any(r.errors for r in results) else 0


def write_json(args, corpus, results, rows, load_at_start) -> None:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / (time.strftime("%Y%m%dT%H%M%S") + ".json")
    path.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": load_at_start,
                    "load_avg_at_end": os.getloadavg()},
        "transport": "plain SMTP, no TLS, loopback, one persistent connection per client",
        "corpus": {"path": str(args.corpus), "messages": len(corpus)},
        "results": [asdict(r) for r in results],
        "ratios_postkeep_over_postfix_dovecot": rows,
    }, indent=2) + "\n")
    print(f"\nresults: {path}")


if __name__ == "__main__":
    sys.exit(main())
