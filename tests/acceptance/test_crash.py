"""Durability: "250" means the message is on disk. Clients deliver as fast as they can while
the server is SIGKILLed at random moments and restarted; afterwards every acknowledged message
is present exactly once and intact."""

import collections
import hashlib
import os
import random
import re
import smtplib
import threading
import time

import pytest

from conftest import DOMAIN, HOST, SENDER

CLIENTS = 8
KILLS = 4
USERS = [f"crash{i}@{DOMAIN}" for i in range(4)]
RUN_AFTER_LAST_RESTART = 2.0
DEADLINE = 120.0  # hard bound for the whole delivery phase, restarts included

ID_RE = re.compile(rb"^X-Attempt-Id: (\S+)\r?$", re.M)
SHA_RE = re.compile(rb"^X-Body-SHA256: ([0-9a-f]{64})\r?$", re.M)


def build(attempt: str, rng: random.Random) -> bytes:
    words = [rng.choice(("alpha", "beta", "gamma", "delta", "epsilon", attempt))
             for _ in range(rng.randint(20, 1500))]
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    body = ("\r\n".join(lines) + "\r\n").encode()
    sha = hashlib.sha256(body).hexdigest()
    head = (f"From: {SENDER}\r\nSubject: crash test {attempt}\r\nX-Attempt-Id: {attempt}\r\n"
            f"X-Body-SHA256: {sha}\r\n\r\n").encode()
    return head + body


class Run:
    def __init__(self, seed: int):
        self.seed = seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[str, list[str], float]] = []  # (attempt, recipients, when)
        self.errors = collections.Counter()
        self.attempts = 0


def client(run: Run, port: int, n: int) -> None:
    rng = random.Random(run.seed * 100 + n)
    conn = None
    seq = 0
    while not run.stop.is_set():
        if conn is None:
            try:
                conn = smtplib.SMTP(HOST, port, local_hostname=f"client{n}.test", timeout=30)
                conn.ehlo()
            except (OSError, smtplib.SMTPException) as e:
                with run.lock:
                    run.errors[f"connect {type(e).__name__}"] += 1
                conn = None
                time.sleep(0.05)
                continue
        seq += 1
        # Every attempt has its own id, so a retry can never look like a duplicate.
        attempt = f"c{n}-{seq}-{rng.getrandbits(32):08x}"
        rcpts = [USERS[(n + seq) % len(USERS)], USERS[(n + seq + 1) % len(USERS)]]
        msg = build(attempt, rng)
        with run.lock:
            run.attempts += 1
        try:
            refused = conn.sendmail(SENDER, rcpts, msg)
        except (OSError, smtplib.SMTPException) as e:
            with run.lock:
                run.errors[f"send {type(e).__name__}"] += 1
            try:
                conn.close()
            except OSError:
                pass
            conn = None
            continue
        accepted = [r for r in rcpts if r not in refused]
        with run.lock:
            run.acked.append((attempt, accepted, time.monotonic()))
    if conn is not None:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()


@pytest.mark.timeout(600)
def test_acknowledged_messages_survive_sigkill(make_server):
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"crash test seed {seed}")
    rng = random.Random(seed)
    srv = make_server(users=USERS)
    run = Run(seed)
    threads = [threading.Thread(target=client, args=(run, srv.port, n), daemon=True)
               for n in range(CLIENTS)]
    start = time.monotonic()
    for t in threads:
        t.start()

    restarts = []
    try:
        # Let deliveries get going before the first kill.
        while len(run.acked) < 5 and time.monotonic() - start < 60:
            time.sleep(0.05)
        assert run.acked, "no message was acknowledged in 60 s before any kill"
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.5))
            srv.kill9()
            srv.start()  # waits until it answers again
            restarts.append(time.monotonic())
            assert time.monotonic() - start < DEADLINE, "restarts take far too long"
        time.sleep(RUN_AFTER_LAST_RESTART)
    finally:
        run.stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    srv.stop()

    acked_after_last = [a for a in run.acked if a[2] > restarts[-1]]
    summary = (f"seed {seed}: {run.attempts} attempts, {len(run.acked)} acknowledged "
               f"({len(acked_after_last)} after the last restart), errors {dict(run.errors)}")
    print(summary)
    assert len(run.acked) >= 20, f"too few deliveries for a meaningful test: {summary}"
    assert acked_after_last, f"nothing delivered after the last restart: {summary}"

    problems = []
    seen: dict[str, collections.Counter] = {}
    for user in USERS:
        counts = collections.Counter()
        for i, m in enumerate(srv.export(user)):
            ids, shas = ID_RE.findall(m), SHA_RE.findall(m)
            sep = m.find(b"\r\n\r\n")
            if len(ids) != 1 or len(shas) != 1 or sep < 0:
                problems.append(f"{user} message #{i} is mangled: {m[:300]!r}")
                continue
            body = m[sep + 4:]
            if hashlib.sha256(body).hexdigest().encode() != shas[0]:
                problems.append(f"{user} message {ids[0].decode()} has a corrupt body "
                                f"({len(body)} bytes)")
            counts[ids[0].decode()] += 1
        seen[user] = counts
        for attempt, n in counts.items():
            if n > 1:
                problems.append(f"{user} holds attempt {attempt} {n} times")
    for attempt, rcpts, _ in run.acked:
        for user in rcpts:
            if seen[user][attempt] == 0:
                problems.append(f"acknowledged message {attempt} missing for {user}")
    assert not problems, f"{summary}\n" + "\n".join(problems[:40])
