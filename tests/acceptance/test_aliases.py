"""`postkeep alias add|list|remove`: extra addresses delivering to an account, managed from the
command line while `serve` runs, with the refusals an operator relies on."""

import secrets

from conftest import DOMAIN, make_message, with_token
from imap_helpers import wait_port
from test_cli import rcpt_code
from test_submission import mailbox_messages

ALICE, BOB = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
SALES = f"sales@{DOMAIN}"
OTHER = "other.test"


def alias_lines(srv, *args: str) -> list[str]:
    return srv.cli("alias", "list", *args).stdout.decode().splitlines()


def refusal(srv, *args: str, input: bytes | None = None) -> str:
    """Runs a command that must fail and returns what it printed on standard error."""
    proc = srv.cli(*args, input=input, check=False)
    assert proc.returncode != 0, (
        f"`postkeep {' '.join(args)}` should fail, exited 0: {proc.stdout.decode()!r}")
    return proc.stderr.decode()


def test_mail_to_an_alias_lands_in_the_accounts_inbox_until_it_is_removed(server):
    wait_port(server.ports["imaps"])
    assert rcpt_code(server, SALES) == (550, "5.1.1")
    # Addresses are case-insensitive: stored lower-cased, found whatever case RCPT TO uses.
    server.cli("alias", "add", "Sales@Example.TEST", ALICE)  # while serve runs
    assert alias_lines(server) == [f"{SALES} -> {ALICE}"]
    token = secrets.token_hex(8)
    server.send(["SALES@example.test"], make_message(token, "for sales", to=SALES))
    assert len(with_token(mailbox_messages(server, ALICE, "INBOX"), token)) == 1, (
        "mail for the alias did not land once in the account's INBOX")
    server.cli("alias", "remove", "sAles@example.TEST")
    assert rcpt_code(server, SALES) == (550, "5.1.1"), "a removed alias is still accepted"
    assert rcpt_code(server, ALICE)[0] == 250, "removing an alias affected its account"
    assert alias_lines(server) == []


def test_alias_list_is_sorted_and_filtered_by_domain(make_server):
    srv = make_server(users=("alice", "bob"), start=False)
    srv.cli("domain", "add", OTHER)
    for alias, account in ((f"zeta@{OTHER}", ALICE), (f"info@{DOMAIN}", BOB),
                           (f"abuse@{DOMAIN}", ALICE)):
        srv.cli("alias", "add", alias, account)
    assert alias_lines(srv) == [f"abuse@{DOMAIN} -> {ALICE}", f"info@{DOMAIN} -> {BOB}",
                                f"zeta@{OTHER} -> {ALICE}"]
    assert alias_lines(srv, "--domain", "Other.Test") == [f"zeta@{OTHER} -> {ALICE}"]
    assert "not one of our domains" in refusal(srv, "alias", "list", "--domain", "nowhere.test")


def test_alias_commands_refuse_foreign_domains_shadowing_and_unknown_names(make_server):
    srv = make_server(users=("alice", "bob"), start=False)
    srv.cli("alias", "add", SALES, ALICE)
    cases = [
        ("a domain that is not ours", ("alias", "add", "sales@elsewhere.test", ALICE),
         "not one of our domains"),
        ("an account's address", ("alias", "add", "BOB@example.test", ALICE), "is an account"),
        ("another alias", ("alias", "add", "SALES@example.test", BOB), "already exists"),
        ("an unknown account", ("alias", "add", f"info@{DOMAIN}", f"nobody@{DOMAIN}"),
         "no account"),
        ("an unknown alias", ("alias", "remove", f"info@{DOMAIN}"), "not found"),
        ("an account removed as an alias", ("alias", "remove", BOB), "not found"),
    ]
    for what, args, message in cases:
        err = refusal(srv, *args)
        assert message in err, f"{what}: expected {message!r} in the error, got {err!r}"
    err = refusal(srv, "user", "add", SALES, "--password-stdin", input=b"secret 12345\n")
    assert "is an alias" in err, f"an account over an alias: {err!r}"
    assert alias_lines(srv) == [f"{SALES} -> {ALICE}"], "a refused command changed the aliases"
    assert SALES not in srv.cli("user", "list").stdout.decode().split()


def test_domain_with_aliases_is_kept_until_they_are_removed(make_server):
    """An alias resolves before its domain is checked, so removing the domain under it would
    leave mail for that domain accepted."""
    srv = make_server(users=("alice",), start=False)
    srv.cli("domain", "add", OTHER)
    srv.cli("alias", "add", f"sales@{OTHER}", ALICE)
    assert "1 alias(es)" in refusal(srv, "domain", "remove", OTHER)
    assert OTHER in srv.cli("domain", "list").stdout.decode().split()
    srv.cli("alias", "remove", f"sales@{OTHER}")
    srv.cli("domain", "remove", OTHER)
    assert OTHER not in srv.cli("domain", "list").stdout.decode().split()
