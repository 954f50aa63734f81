# A Postfix instance of its own under a private directory DIR, run as `postfix -c DIR/postfix`:
# nothing of the system's Postfix configuration is used or changed, and no init system is
# needed. Sourced by tests/postfix/postfix-mx.sh (the remote MX of the outbound tests) and
# bench/postfix-dovecot.sh (the benchmark's Postfix + Dovecot); each appends its own
# main.cf settings and delivery service to what `postfix_configure` writes.
#
#   postfix_configure DIR PORT DOMAIN   DIR/postfix/{main,master}.cf: SMTP on 127.0.0.1:PORT,
#                                       host mx.DOMAIN, queue in DIR/spool, log DIR/postfix.log
#   postfix_start DIR                   check the configuration and start the master
#   postfix_reload DIR                  re-read the configuration and lookup tables
#   postfix_stop DIR                    stop it; no process of it is left behind
#   stop_master PIDFILE COMMAND...      stop a daemon's master: COMMAND, else TERM, then KILL
#                                       whatever of it and its children is still there

# postfix and postconf live in /usr/sbin, outside some users' PATH.
PATH=$PATH:/usr/sbin:/sbin

postfix_configure() {
    local dir=${1:?} port=${2:?} domain=${3:?}
    local pf="$dir/postfix"
    mkdir -p "$pf" "$dir/spool" "$dir/data"
    # Postfix's unprivileged processes must reach the files under DIR.
    chmod 755 "$dir"
    cat >"$pf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $dir
maillog_file = $dir/postfix.log
myhostname = mx.$domain
mydomain = $domain
myorigin = $domain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Nothing slow and irrelevant on loopback: no DNS, no reverse lookups of the client.
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_delay_reject = no
biff = no
append_dot_mydomain = no
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
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
}

postfix_start() {
    local dir=${1:?}
    postfix -c "$dir/postfix" set-permissions >/dev/null 2>&1 || true
    postfix -c "$dir/postfix" check
    postfix -c "$dir/postfix" start >/dev/null 2>&1
}

postfix_reload() {
    postfix -c "${1:?}/postfix" reload >/dev/null 2>&1
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

stop_master() {
    local pidfile=${1:?} pid kids p
    shift
    [ -f "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kids=$(descendants "$pid")
    "$@" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    for p in $pid $kids; do
        [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    return 0
}

postfix_stop() {
    local dir=${1:?}
    stop_master "$dir/spool/pid/master.pid" postfix -c "$dir/postfix" abort
}
