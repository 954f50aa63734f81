#!/usr/bin/env bash
# A throwaway Postfix acting as the remote mail exchanger of test domains, isolated under DIR,
# for the outbound queue's tests (crates/outbound/tests/). It listens on 127.0.0.1:PORT with
# STARTTLS (a fresh self-signed certificate) and files mail with its own `virtual` delivery
# agent into DIR/mail/<domain>/<user>/Maildir/.
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
# Nothing of the system's Postfix configuration is used or changed and no init system is
# needed: Postfix runs with `-c DIR/postfix`, as bench/postfix-dovecot.sh does it.
set -euo pipefail
# postfix and postconf live in /usr/sbin, outside some users' PATH.
PATH=$PATH:/usr/sbin:/sbin

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
    local pf="$dir/postfix"
    mkdir -p "$pf" "$dir/spool" "$dir/data" "$dir/mail"
    chown nobody:nogroup "$dir/mail"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=mx.$1" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    chmod 644 "$dir/key.pem"
    cat >"$pf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $dir
maillog_file = $dir/postfix.log
myhostname = mx.$1
mydomain = $1
myorigin = $1
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = $*
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_recipient_restrictions = check_recipient_access texthash:$dir/access,
    permit_mynetworks, reject_unauth_destination
smtpd_delay_reject = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
# STARTTLS offered, not required; handshakes logged, and noted in the Received: header.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/cert.pem
smtpd_tls_key_file = $dir/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
CONF
    # chroot column = n everywhere: the chroot would need copies of /etc files.
    cat >"$pf/master.cf" <<CONF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
}

start() {
    local dir=${1:?} port=${2:?}
    shift 2
    [ "$#" -gt 0 ] || usage
    command -v postfix >/dev/null 2>&1 || {
        echo "postfix is not installed: scripts/test installs it (Debian package postfix)" >&2
        exit 1
    }
    # Postfix's unprivileged processes must reach the files under DIR.
    chmod 755 "$dir"
    write_maps "$dir"
    write_config "$dir" "$port" "$@"
    postfix -c "$dir/postfix" set-permissions >/dev/null 2>&1 || true
    postfix -c "$dir/postfix" check
    postfix -c "$dir/postfix" start >/dev/null 2>&1
}

reload() {
    local dir=${1:?}
    write_maps "$dir"
    postfix -c "$dir/postfix" reload >/dev/null 2>&1
}

# Every descendant of pid $1.
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

stop() {
    local dir=${1:?} pid kids
    local pidfile="$dir/spool/pid/master.pid"
    [ -f "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kids=$(descendants "$pid")
    postfix -c "$dir/postfix" abort >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    for p in $pid $kids; do
        [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    return 0
}

case "${1:-}" in
start) shift; start "$@" ;;
reload) reload "${2:-}" ;;
stop) stop "${2:-}" ;;
*) usage ;;
esac
