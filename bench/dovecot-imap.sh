#!/usr/bin/env bash
# Dovecot serving IMAP over implicit TLS (imaps) on 127.0.0.1, isolated under $DCIMAP_DIR, for
# bench/imap_bench.py to compare postkeep against.
#
#   dovecot-imap.sh setup                        install dovecot-core + dovecot-imapd if missing
#   dovecot-imap.sh start PORT CERT KEY [SRC]    fresh config and maildir under $DCIMAP_DIR, start
#                                                (SRC: a Maildir whose cur/ files are copied into
#                                                the account's INBOX first, mtimes kept)
#   dovecot-imap.sh stop                         stop it and make sure none of its processes is left
#   dovecot-imap.sh maildir                      print the account's Maildir
#   dovecot-imap.sh pid                          print the master's pid
#
# Environment (all optional):
#   DCIMAP_DIR         working directory            (default /tmp/postkeep-bench-dcimap)
#   DCIMAP_USER        the account                  (default u@bench.test)
#   DCIMAP_PASS        its passdb password field    (default {PLAIN}pw; the benchmark passes the
#                      very argon2id hash postkeep stored, as {ARGON2ID}$argon2id$...)
#   DCIMAP_MAX_CONN    IMAP connections to allow    (default 2000)
#   DCIMAP_LOGIN_MODE  performance | security       (default performance), see below
#
# Nothing of the system's own Dovecot configuration is used or changed, and systemd is not
# needed: Dovecot runs with `-c $DCIMAP_DIR/dovecot.conf`, mail owned by nobody.
#
# imap-login modes (https://doc.dovecot.org/admin_manual/login_processes/):
#   performance  service_count = 0: a few long-lived login processes (one per CPU) each hold
#                many connections; they also proxy TLS for the whole session. Dovecot's
#                recommendation for many users, and its smallest memory per connection.
#   security     Dovecot's default, service_count = 1: one login process per connection (it
#                stays alive to proxy TLS), so two processes per connection.
set -euo pipefail
# `stop_master`, shared with the Postfix scripts.
# shellcheck source=../tests/postfix/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/postfix/lib.sh"

DIR=${DCIMAP_DIR:-/tmp/postkeep-bench-dcimap}
USER_NAME=${DCIMAP_USER:-u@bench.test}
PASS=${DCIMAP_PASS:-"{PLAIN}pw"}
MAX_CONN=${DCIMAP_MAX_CONN:-2000}
LOGIN_MODE=${DCIMAP_LOGIN_MODE:-performance}
HOME_DIR="$DIR/home/u"
MAILDIR="$HOME_DIR/Maildir"
# Enough descriptors for MAX_CONN connections: the master and the login processes hold several
# per connection (client socket, proxy to imap, listener copies).
NOFILE=$((MAX_CONN * 4 + 4096))

need_install() {
    command -v dovecot >/dev/null 2>&1 || return 0
    [ -x /usr/lib/dovecot/imap ] && [ -x /usr/lib/dovecot/imap-login ] || return 0
    return 1
}

setup() {
    if ! need_install; then
        echo "dovecot (imap) already installed: $(dovecot --version)"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages from starting system-wide daemons (there may be no init system).
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends dovecot-core dovecot-imapd
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

login_service() {
    local port=$1
    echo "service imap-login {"
    echo "  inet_listener imap {"
    echo "    port = 0"
    echo "  }"
    echo "  inet_listener imaps {"
    echo "    port = $port"
    echo "    ssl = yes"
    echo "  }"
    case "$LOGIN_MODE" in
    performance)
        echo "  service_count = 0"
        echo "  process_min_avail = $(nproc)"
        echo "  client_limit = $MAX_CONN"
        echo "  vsz_limit = 1G"
        ;;
    security)
        echo "  service_count = 1"
        echo "  process_limit = $MAX_CONN"
        ;;
    *)
        echo "DCIMAP_LOGIN_MODE must be performance or security, not '$LOGIN_MODE'" >&2
        exit 2
        ;;
    esac
    echo "}"
}

write_config() {
    local port=$1 cert=$2 key=$3
    # Every process talks to anvil, auth, stats, log and config: their client limits must cover
    # one connection per imap and imap-login process, or logins stall under load.
    local clients=$((MAX_CONN * 3 + 100))
    mkdir -p "$DIR/run" "$DIR/state" "$MAILDIR"/{cur,new,tmp}
    echo "$USER_NAME:$PASS:65534:65534::$HOME_DIR::" >"$DIR/users"
    # Read by the auth process, which runs as the dovecot user.
    chgrp dovecot "$DIR/users"
    chmod 640 "$DIR/users"
    cat >"$DIR/dovecot.conf" <<EOF
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
# Implicit TLS only, TLS 1.3 only, postkeep's own certificate.
ssl = required
ssl_cert = <$cert
ssl_key = <$key
ssl_min_protocol = TLSv1.3
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
# Same durability as postkeep (which fsyncs every change before answering).
mail_fsync = always
first_valid_uid = 1
# Dovecot's default of 10 per user and IP would refuse the idle-connection test.
mail_max_userip_connections = 10000
default_process_limit = $MAX_CONN
default_client_limit = $clients
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  driver = passwd-file
  args = $DIR/users
}
service imap {
  # One imap process per connection (client_limit 1 is Dovecot's default and only sane value).
  process_limit = $MAX_CONN
}
service anvil {
  client_limit = $clients
}
service auth {
  client_limit = $clients
}
service stats {
  client_limit = $clients
}
$(login_service "$port")
EOF
}

copy_mail() {
    local src=$1
    [ -d "$src/cur" ] || { echo "$src is not a Maildir (no cur/)" >&2; exit 1; }
    # cp -p keeps mtimes: Dovecot takes a maildir message's INTERNALDATE from its mtime, as
    # `postkeep import` does, so both servers report the same dates.
    find "$src/cur" -maxdepth 1 -type f -exec cp -p -t "$MAILDIR/cur" {} +
}

start() {
    local port=${1:?usage: $0 start PORT CERT KEY [MAILDIR]} cert=${2:?CERT} key=${3:?KEY}
    local src=${4:-}
    need_install && { echo "dovecot imap missing: run '$0 setup' first" >&2; exit 1; }
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    write_config "$port" "$cert" "$key"
    [ -n "$src" ] && copy_mail "$src"
    # Mail is owned by nobody:nogroup (the userdb uid; Dovecot refuses to run mail as root).
    chown -R nobody:nogroup "$DIR/home"
    ulimit -n "$NOFILE"
    dovecot -c "$DIR/dovecot.conf"
    # The master writes its pid file after forking into the background: wait for it, so that
    # `pid` and `stop` work as soon as this returns.
    local i
    for i in $(seq 100); do
        [ -s "$DIR/run/master.pid" ] && return 0
        sleep 0.1
    done
    echo "dovecot wrote no $DIR/run/master.pid within 10 s; see $DIR/dovecot.log" >&2
    exit 1
}

master_pid() {
    local pidfile="$DIR/run/master.pid"
    [ -f "$pidfile" ] || return 1
    tr -dc '0-9' <"$pidfile"
}

stop() {
    [ -d "$DIR" ] || return 0
    stop_master "$DIR/run/master.pid" dovecot -c "$DIR/dovecot.conf" stop
}

case "${1:-}" in
setup) setup ;;
start) start "${2:-}" "${3:-}" "${4:-}" "${5:-}" ;;
stop) stop ;;
maildir) echo "$MAILDIR" ;;
pid) master_pid ;;
*)
    echo "usage: $0 setup | start PORT CERT KEY [MAILDIR] | stop | maildir | pid" >&2
    exit 2
    ;;
esac
