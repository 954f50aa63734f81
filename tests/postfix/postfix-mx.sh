#!/usr/bin/env bash
# A throwaway Postfix acting as the remote mail exchanger of test domains, isolated under DIR,
# for the outbound queue's tests (crates/outbound/tests/, tests/acceptance/test_outbound.py).
# It listens on 127.0.0.1:PORT with STARTTLS (a fresh self-signed certificate) and files mail
# with its own `virtual` delivery agent into DIR/mail/<domain>/<user>/Maildir/.
#
#   postfix-mx.sh start DIR PORT DOMAIN...   configure and start (reads DIR/users, DIR/access)
#   postfix-mx.sh reload DIR                 re-read DIR/access (after the test rewrote it)
#   postfix-mx.sh stop DIR                   stop it; no process of it is left behind
#
# DIR/users: one address per line, the mailboxes that exist; every other recipient of the
# domains gets Postfix's "550 5.1.1 User unknown". DIR/access: Postfix access(5) lines such as
# "busy@remote.test 450 4.2.1 Mailbox busy", answered to RCPT TO. The log is DIR/postfix.log
# (TLS sessions are logged: smtpd_tls_loglevel = 1).
#
# The private Postfix instance itself (`postfix -c DIR/postfix`) is set up by lib.sh beside
# this script, shared with bench/postfix-dovecot.sh.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $0 start DIR PORT DOMAIN... | reload DIR | stop DIR" >&2
    exit 2
}

write_maps() {
    local dir=$1
    touch "$dir/users" "$dir/access"
    # virtual(8) map: address -> mailbox path under virtual_mailbox_base; "/" = Maildir.
    awk 'NF { split($1, a, "@"); print $1, a[2] "/" a[1] "/Maildir/" }' "$dir/users" \
        >"$dir/vmailbox"
}

write_config() {
    local dir=$1 port=$2
    shift 2
    postfix_configure "$dir" "$port" "$1"
    mkdir -p "$dir/mail"
    chown nobody:nogroup "$dir/mail"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=mx.$1" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    chmod 644 "$dir/key.pem"
    cat >>"$dir/postfix/main.cf" <<CONF
virtual_mailbox_domains = $*
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_recipient_restrictions = check_recipient_access texthash:$dir/access,
    permit_mynetworks, reject_unauth_destination
# STARTTLS offered, not required; handshakes logged, and noted in the Received: header.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/cert.pem
smtpd_tls_key_file = $dir/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
CONF
    echo "virtual   unix  -       n       n       -       -       virtual" \
        >>"$dir/postfix/master.cf"
}

start() {
    local dir=${1:?} port=${2:?}
    shift 2
    [ "$#" -gt 0 ] || usage
    command -v postfix >/dev/null 2>&1 || {
        echo "postfix is not installed: scripts/test installs it (Debian package postfix)" >&2
        exit 1
    }
    write_config "$dir" "$port" "$@"
    write_maps "$dir"
    postfix_start "$dir"
}

reload() {
    local dir=${1:?}
    write_maps "$dir"
    postfix_reload "$dir"
}

case "${1:-}" in
start) shift; start "$@" ;;
reload) reload "${2:-}" ;;
stop) postfix_stop "${2:?}" ;;
*) usage ;;
esac
