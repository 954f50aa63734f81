"""Start-up errors: a broken postkeep.toml or master key stops `serve` with a message that
says exactly what is wrong and where."""

import os
import re
import secrets
import subprocess

import pytest

from conftest import (DOMAIN, Server, child_env, line_of, make_message, set_toml_value,
                      split_received)

ALICE = f"alice@{DOMAIN}"


def serve_expecting_failure(srv: Server, env: dict | None = None) -> str:
    """Runs `serve` and asserts it exits non-zero by itself; returns its stderr+stdout."""
    cmd = [str(srv.bin), "serve", "--data", str(srv.data)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                              env=child_env(env))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"serve kept running instead of refusing to start; output: "
                             f"{e.stderr!r}") from None
    out = (proc.stderr + proc.stdout).decode(errors="replace")
    assert proc.returncode != 0, f"serve exited 0 despite the broken setup; output:\n{out}"
    return out


def assert_names_file_line_key(out: str, line: int, key: str) -> None:
    assert "postkeep.toml" in out, f"error does not name postkeep.toml:\n{out}"
    assert re.search(rf"(:|line ){line}\b", out), f"error does not give line {line}:\n{out}"
    assert key in out, f"error does not name the key `{key}`:\n{out}"


def test_wrong_type_names_file_line_and_key(make_server):
    srv = make_server(users=(), start=False)
    text = set_toml_value(srv.config_text(), "smtp", "max_recipients", '"lots"')
    srv.config_path.write_text(text)
    out = serve_expecting_failure(srv)
    assert_names_file_line_key(out, line_of(text, "smtp", "max_recipients"),
                               "smtp.max_recipients")


def test_unknown_key_names_file_line_and_key(make_server):
    srv = make_server(users=(), start=False)
    text = srv.config_text()
    lines = text.splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.strip() == "[smtp]") + 1
    lines.insert(at, "max_recipientz = 5\n")
    text = "".join(lines)
    srv.config_path.write_text(text)
    out = serve_expecting_failure(srv)
    assert_names_file_line_key(out, at + 1, "smtp.max_recipientz")


def test_syntax_error_names_file_line_and_key(make_server):
    srv = make_server(users=(), start=False)
    text = srv.config_text()
    line = line_of(text, "smtp", "max_errors")
    lines = text.splitlines(keepends=True)
    lines[line - 1] = "max_errors = = 10\n"
    srv.config_path.write_text("".join(lines))
    out = serve_expecting_failure(srv)
    assert_names_file_line_key(out, line, "max_errors")


def test_master_key_readable_by_others_is_refused(make_server):
    srv = make_server(users=(), start=False)
    mode = srv.master_key_path.stat().st_mode & 0o777
    assert mode == 0o600, f"init should create master.key with mode 0600, not {oct(mode)}"
    srv.master_key_path.chmod(0o644)
    out = serve_expecting_failure(srv)
    assert "master.key" in out, f"error does not name master.key:\n{out}"
    assert re.search(r"permission|mode|0?644|readable", out, re.I), (
        f"error does not explain the permission problem:\n{out}")
    srv.master_key_path.chmod(0o640)
    out = serve_expecting_failure(srv)
    assert "master.key" in out, f"group-readable master.key accepted or not named:\n{out}"


def test_missing_master_key_is_a_clear_error(make_server):
    srv = make_server(users=(), start=False)
    srv.master_key_path.unlink()
    out = serve_expecting_failure(srv)
    assert "master.key" in out, f"error does not name the missing master.key:\n{out}"


def master_key_hex(path) -> str:
    raw = path.read_bytes()
    text = raw.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", text):
        return text.decode()
    if len(raw) == 32:
        return raw.hex()
    pytest.fail(f"master.key is neither 64 hex characters nor 32 raw bytes: {len(raw)} bytes",
                pytrace=False)


def test_master_key_from_environment_when_file_is_absent(make_server):
    srv = make_server()
    before = make_message(secrets.token_hex(8), "before")
    srv.send([ALICE], before)
    srv.stop()

    env = {"POSTKEEP_MASTER_KEY": master_key_hex(srv.master_key_path)}
    srv.master_key_path.unlink()
    srv.start(env=env)
    after = make_message(secrets.token_hex(8), "after")
    srv.send([ALICE], after)
    msgs = srv.export(ALICE, env=env)
    assert len(msgs) == 2, f"expected both messages with the key from the environment: {len(msgs)}"
    for sent in (before, after):
        found = [m for m in msgs if m.endswith(sent)]
        assert len(found) == 1, "a message is missing or changed with the env master key"
        split_received(found[0], sent)
    assert not srv.master_key_path.exists(), "serve recreated master.key though the env had it"


def test_wrong_master_key_in_environment_cannot_read_mail(make_server):
    srv = make_server()
    token = secrets.token_hex(8)
    srv.send([ALICE], make_message(token, "secret"))
    srv.stop()
    srv.master_key_path.unlink()
    wrong = {"POSTKEEP_MASTER_KEY": secrets.token_hex(32)}
    proc = srv.cli("export", ALICE, str(srv.root / "wrong.mbox"), env=wrong, check=False)
    out = srv.root / "wrong.mbox"
    leaked = out.exists() and token.encode() in out.read_bytes()
    assert not leaked, "export with a wrong master key produced the plaintext"
    assert proc.returncode != 0, "export with a wrong master key claimed success"


def test_malformed_master_key_in_environment_is_rejected(make_server):
    srv = make_server(users=(), start=False)
    srv.master_key_path.unlink()
    out = serve_expecting_failure(srv, env={"POSTKEEP_MASTER_KEY": "not-hex"})
    assert "POSTKEEP_MASTER_KEY" in out, f"error does not name the variable:\n{out}"


def test_data_dir_permissions_after_init(make_server):
    srv = make_server(users=(), start=False)
    for path in (srv.master_key_path, srv.key_path):
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path.name} is accessible to group/others: {oct(mode)}"
    assert os.access(srv.cert_path, os.R_OK)
