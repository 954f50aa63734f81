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
# not needed: Postfix runs with `-c $PFDC_DIR/postfix`, Dovecot with `-c $PFDC_DIR/dovecot.conf`.
#
# Durability, to match postkeep's "250 = fsync'd and committed":
#   - Postfix fsyncs each queue file before its 250 (the default; kept).
#   - Dovecot: mail_fsync = always (its default is "optimized"), so LMTP's 250 to Postfix
#     comes after the maildir file is fsync'd, and only then does Postfix drop its queue file.
set -euo pipefail

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
    local port=$1 pf="$DIR/postfix"
    mkdir -p "$pf" "$DIR/spool" "$DIR/data"
    cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $DIR
maillog_file = $DIR/postfix.log
myhostname = mx.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Accept mail for bench.test and hand it to Dovecot over LMTP (unix socket).
virtual_mailbox_domains = bench.test
virtual_transport = lmtp:unix:$DIR/dovecot-run/lmtp
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
message_size_limit = 52428800
# Nothing slow and irrelevant: no DNS, no reverse lookups of the client, no limits on loopback.
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_delay_reject = no
smtpd_client_connection_count_limit = 1000
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
biff = no
append_dot_mydomain = no
# No TLS anywhere: the benchmark is plain SMTP on loopback for both servers.
smtpd_tls_security_level =
smtp_tls_security_level =
EOF
    # chroot column = n everywhere: the chroot would need copies of /etc files.
    cat >"$pf/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
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
    chmod 755 "$DIR"
    write_postfix_config "$port"
    write_dovecot_config
    dovecot -c "$DIR/dovecot.conf"
    postfix -c "$DIR/postfix" set-permissions >/dev/null 2>&1 || true
    postfix -c "$DIR/postfix" check
    postfix -c "$DIR/postfix" start
}

# Every descendant of pid $1 (so that only the processes we started are touched).
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            want[root] = 1
            do {
                added = 0
                for (p in parent) if (!(p in want) && (parent[p] in want)) { want[p] = 1; added = 1 }
            } while (added)
            for (p in want) if (p != root) print p
        }'
}

# Stop the master whose pid is in file $2 with command $1; kill it and its children if it lingers.
stop_master() {
    local cmd=$1 pidfile=$2 pid kids i
    [ -f "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kids=$(descendants "$pid")
    $cmd >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    for p in $pid $kids; do
        [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    return 0
}

stop() {
    [ -d "$DIR" ] || return 0
    stop_master "postfix -c $DIR/postfix abort" "$DIR/spool/pid/master.pid"
    stop_master "dovecot -c $DIR/dovecot.conf stop" "$DIR/dovecot-run/master.pid"
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
