#!/usr/bin/env bash
# Postfix (SMTP, port PORT on 127.0.0.1) delivering over LMTP to Dovecot (maildir), isolated
# under $PFDC_DIR, for bench/smtp_ingest.py to compare postkeep against.
#
#   postfix-dovecot.sh setup         install postfix, dovecot-core, dovecot-lmtpd if missing
#   postfix-dovecot.sh start PORT    fresh config, queue and maildir under $PFDC_DIR; start both
#   postfix-dovecot.sh stop          stop both and make sure none of their processes is left
#   postfix-dovecot.sh maildir       print the maildir that receives u@bench.test
#
# Nothing of the system's own postfix/dovecot configuration is used or changed, and systemd is
# not needed: Postfix runs with `-c $PFDC_DIR/postfix` (tests/postfix/lib.sh), Dovecot with
# `-c $PFDC_DIR/dovecot.conf`.
#
# Durability, to match postkeep's "250 = fsync'd and committed":
#   - Postfix fsyncs each queue file before its 250 (the default; kept).
#   - Dovecot: mail_fsync = always (its default is "optimized"), so LMTP's 250 to Postfix
#     comes after the maildir file is fsync'd, and only then does Postfix drop its queue file.
set -euo pipefail
# The private Postfix instance, shared with the outbound tests' remote MX.
# shellcheck source=../tests/postfix/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/postfix/lib.sh"

DIR=${PFDC_DIR:-/tmp/postkeep-bench-pfdc}
MAILDIR="$DIR/mail/bench.test/u/Maildir"

need_install() {
    command -v postfix >/dev/null 2>&1 || return 0
    command -v dovecot >/dev/null 2>&1 || return 0
    [ -x /usr/lib/dovecot/lmtp ] || return 0
    return 1
}

setup() {
    if ! need_install; then
        echo "postfix and dovecot (lmtp) already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": the package must not write /etc/postfix/main.cf nor ask anything.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Keep the packages from starting system-wide daemons (there may be no init system).
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends postfix dovecot-core dovecot-lmtpd
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

write_postfix_config() {
    local port=$1
    postfix_configure "$DIR" "$port" bench.test
    cat >>"$DIR/postfix/main.cf" <<EOF
# Accept mail for bench.test and hand it to Dovecot over LMTP (unix socket).
virtual_mailbox_domains = bench.test
virtual_transport = lmtp:unix:$DIR/dovecot-run/lmtp
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
message_size_limit = 52428800
# No DNS for LMTP either, no limits on loopback.
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_client_connection_count_limit = 1000
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
# No TLS anywhere: the benchmark is plain SMTP on loopback for both servers.
smtpd_tls_security_level =
smtp_tls_security_level =
EOF
    echo "lmtp      unix  -       -       n       -       -       lmtp" >>"$DIR/postfix/master.cf"
}

write_dovecot_config() {
    mkdir -p "$DIR/dovecot-run" "$DIR/dovecot-state" "$DIR/mail/bench.test/u"
    # Mail is owned by nobody:nogroup (Dovecot refuses to deliver as root).
    chown -R nobody:nogroup "$DIR/mail"
    echo "u@bench.test::65534:65534::$DIR/mail/bench.test/u::" >"$DIR/users"
    cat >"$DIR/dovecot.conf" <<EOF
base_dir = $DIR/dovecot-run
state_dir = $DIR/dovecot-state
log_path = $DIR/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
postmaster_address = postmaster@bench.test
mail_location = maildir:~/Maildir
# Match postkeep's durability: fsync every delivered message before LMTP's 250.
mail_fsync = always
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
}
service lmtp {
  process_limit = 200
  unix_listener lmtp {
    mode = 0666
  }
}
EOF
}

start() {
    local port=${1:?usage: $0 start PORT}
    need_install && { echo "postfix/dovecot missing: run '$0 setup' first" >&2; exit 1; }
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR"
    write_postfix_config "$port"
    write_dovecot_config
    dovecot -c "$DIR/dovecot.conf"
    postfix_start "$DIR"
}

stop() {
    [ -d "$DIR" ] || return 0
    postfix_stop "$DIR"
    stop_master "$DIR/dovecot-run/master.pid" dovecot -c "$DIR/dovecot.conf" stop
}

case "${1:-}" in
setup) setup ;;
start) start "${2:-}" ;;
stop) stop ;;
maildir) echo "$MAILDIR" ;;
*)
    echo "usage: $0 setup | start PORT | stop | maildir" >&2
    exit 2
    ;;
esac
