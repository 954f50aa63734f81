//! Commented `postkeep.toml` templates written by `postkeep init`.

use std::fmt::Write;

use crate::{Dns, Imap, Pop3, Queue, SmtpSettings, Submission};

/// The file `postkeep init --dev` writes: loopback only, unprivileged ports from `ports_base`
/// (SMTP on `ports_base`; the other listeners on the following ports; those not built yet
/// are commented out).
pub fn dev_config(hostname: &str, ports_base: u16) -> String {
    // Saturating keeps huge bases from panicking; the commented lines are only hints anyway.
    let port = |n: u16| ports_base.saturating_add(n);
    let listeners = [
        ("submission", port(1)),
        ("submissions", port(2)),
        ("imap", port(3)),
        ("imaps", port(4)),
        ("pop3", port(5)),
        ("pop3s", port(6)),
        ("https", port(7)),
    ];
    render(
        hostname,
        "Development setup: loopback only, unprivileged ports.",
        ("127.0.0.1", ports_base),
        &listeners,
        // Local test senders cannot pass SPF or DKIM, and a From: of a DMARC p=reject domain
        // would be refused: verification is for a server that receives real mail.
        false,
    )
}

/// The file a plain `postkeep init` writes: SMTP on all IPv4 interfaces, port 25.
pub fn default_config(hostname: &str) -> String {
    let listeners = [
        ("submission", 587),
        ("submissions", 465),
        ("imap", 143),
        ("imaps", 993),
        ("pop3", 110),
        ("pop3s", 995),
        ("https", 443),
    ];
    render(
        hostname,
        "Production setup.",
        ("0.0.0.0", 25),
        &listeners,
        true,
    )
}

/// Listeners this version serves; the others are written commented out.
const AVAILABLE: [&str; 6] = [
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
];

fn render(
    hostname: &str,
    flavour: &str,
    (host, smtp_port): (&str, u16),
    listeners: &[(&str, u16)],
    inbound_auth: bool,
) -> String {
    let smtp = SmtpSettings::default();
    let submission = Submission::default();
    let imap = Imap::default();
    let pop3 = Pop3::default();
    let dns = Dns::default();
    let queue = Queue::default();
    // Serialising through toml escapes quotes and backslashes in the host name.
    let hostname = toml::Value::String(hostname.to_owned()).to_string();
    let mut out = String::new();
    // `write!` into a String cannot fail; ignoring the Ok keeps this panic-free.
    let _ = write!(
        out,
        r#"# postkeep configuration. {flavour}
# Relative paths are resolved against the data directory holding this file.

# Our own host name: used in the SMTP greeting and in Received: headers.
hostname = {hostname}

# Listening sockets, "host:port" ("[::]:25" for IPv6). A missing line turns that listener off.
[listen]
smtp = "{host}:{smtp_port}"
"#
    );
    for (name, port) in listeners {
        // Listeners of later issues are listed, off, so the ports are reserved in the file.
        let off = if AVAILABLE.contains(name) { "" } else { "# " };
        let _ = writeln!(out, "{off}{name} = \"{host}:{port}\"");
    }
    let _ = write!(
        out,
        r#"
# Certificate chain and private key (PEM) for STARTTLS and implicit-TLS listeners.
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"

# Encryption at rest.
[encryption]
# File holding the master key. Back it up: without it the mail cannot be read.
master_key_file = "master.key"
# Who shares a data key: "deployment", "domain" or "account".
key_scope = "account"

# Where mail is kept. "embedded" = SQLite plus files in the data directory (the only backend so far).
[storage]
backend = "embedded"

[smtp]
# Largest accepted message, in bytes.
max_message_size = {max_message_size}
# Recipients accepted per message.
max_recipients = {max_recipients}
# Longest command line in bytes, CRLF included (at least 512, RFC 5321).
max_command_line = {max_command_line}
# Simultaneous connections, in total and from one IP address.
max_connections = {max_connections}
max_connections_per_ip = {max_connections_per_ip}
# Seconds to wait for the next command, and for each read of message data.
command_timeout_secs = {command_timeout_secs}
data_timeout_secs = {data_timeout_secs}
# Protocol errors tolerated before the connection is closed.
max_errors = {max_errors}

# Mail sent by logged-in users (submission on 587 with STARTTLS, submissions on 465 with TLS).
# Size, connection limits and timeouts are those of [smtp].
[submission]
# Messages one account may send per hour, and recipients per message; more get a temporary
# error (4xx), never silently dropped.
max_messages_per_hour = {max_messages_per_hour}
max_recipients = {submission_max_recipients}
# Keep a copy of every sent message in the account's Sent mailbox.
sent_copy = {sent_copy}

# Mail read over IMAP (imap with STARTTLS, imaps with TLS); both listeners share these caps,
# counted per connection from the moment it is accepted, before login.
[imap]
# Simultaneous connections over all clients (the role of Dovecot's process_limit).
max_connections = {imap_max_connections}
# Simultaneous connections from one IP address (Dovecot counts per user and IP instead).
max_connections_per_ip = {imap_max_connections_per_ip}

# Mail read over POP3 (pop3 with STLS, pop3s with TLS); both listeners share these caps,
# counted per connection from the moment it is accepted, before login.
[pop3]
# Simultaneous connections over all clients.
max_connections = {pop3_max_connections}
# Simultaneous connections from one IP address.
max_connections_per_ip = {pop3_max_connections_per_ip}

# DNS for sender authentication (SPF, DKIM, DMARC, ARC) and outbound MX lookups.
[dns]
# Nameservers as "ip:port", e.g. ["127.0.0.1:53"]; empty = the system's (/etc/resolv.conf).
nameservers = []
# Seconds one query may take (1 to 30); a slower answer counts as a temporary error.
timeout_secs = {dns_timeout_secs}

# Sender authentication of mail arriving on the smtp listener: SPF, DKIM, ARC and DMARC are
# recorded in an Authentication-Results: header; mail failing DMARC is rejected or filed
# into Junk as the sender's domain asks.
[inbound_auth]
enabled = {inbound_auth}

# The outbound queue: mail submitted for other domains.
[queue]
# Seconds before the second attempt at a deferred message; each later wait doubles, up to
# retry_max_secs.
retry_base_secs = {retry_base_secs}
retry_max_secs = {retry_max_secs}
# Seconds a message is retried before it is returned to its sender (5 days).
lifetime_secs = {lifetime_secs}
# Seconds undelivered before the sender is told of the delay, once (0 = never).
delay_notice_secs = {delay_notice_secs}
# Deliveries in progress at once.
concurrency = {concurrency}

[log]
# error, warn, info, debug or trace.
level = "info"
"#,
        max_message_size = smtp.max_message_size,
        max_recipients = smtp.max_recipients,
        max_command_line = smtp.max_command_line,
        max_connections = smtp.max_connections,
        max_connections_per_ip = smtp.max_connections_per_ip,
        command_timeout_secs = smtp.command_timeout_secs,
        data_timeout_secs = smtp.data_timeout_secs,
        max_errors = smtp.max_errors,
        max_messages_per_hour = submission.max_messages_per_hour,
        submission_max_recipients = submission.max_recipients,
        sent_copy = submission.sent_copy,
        imap_max_connections = imap.max_connections,
        imap_max_connections_per_ip = imap.max_connections_per_ip,
        pop3_max_connections = pop3.max_connections,
        pop3_max_connections_per_ip = pop3.max_connections_per_ip,
        dns_timeout_secs = dns.timeout_secs,
        retry_base_secs = queue.retry_base_secs,
        retry_max_secs = queue.retry_max_secs,
        lifetime_secs = queue.lifetime_secs,
        delay_notice_secs = queue.delay_notice_secs,
        concurrency = queue.concurrency,
    );
    out
}
