//! Checks that need the parsed values (ranges, hostname syntax, clashing listeners).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::error::{line_of, ConfigError};
use crate::Config;

/// RFC 5321 §4.5.3.1.4: a command line of 512 octets (CRLF included) must be accepted.
const MIN_COMMAND_LINE: usize = 512;
/// Sender verification runs while the client waits for the reply to DATA; a longer DNS
/// timeout would make every slow sender's domain hold connections open for minutes.
const MAX_DNS_TIMEOUT_SECS: u64 = 30;

/// First problem found, reported with its key and, when the key is written in `text`, its line.
pub(crate) fn validate(config: &Config, text: &str, path: &Path) -> Result<(), ConfigError> {
    match first_problem(config) {
        None => Ok(()),
        Some((key, message)) => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            line: key_line(text, &key),
            key,
            message,
        }),
    }
}

fn first_problem(config: &Config) -> Option<(String, String)> {
    let checks = [
        check_hostname(&config.hostname)
            .err()
            .map(|m| ("hostname".to_owned(), m)),
        duplicate_listener(config),
        non_empty_path("tls.cert", &config.tls.cert),
        non_empty_path("tls.key", &config.tls.key),
        non_empty_path(
            "encryption.master_key_file",
            &config.encryption.master_key_file,
        ),
        at_least("smtp.max_message_size", config.smtp.max_message_size, 1),
        at_least(
            "smtp.max_command_line",
            config.smtp.max_command_line as u64,
            MIN_COMMAND_LINE as u64,
        ),
        at_least("smtp.max_recipients", config.smtp.max_recipients.into(), 1),
        connection_caps(
            "smtp",
            config.smtp.max_connections,
            config.smtp.max_connections_per_ip,
        ),
        at_least(
            "smtp.command_timeout_secs",
            config.smtp.command_timeout_secs,
            1,
        ),
        at_least("smtp.data_timeout_secs", config.smtp.data_timeout_secs, 1),
        at_least("smtp.max_errors", config.smtp.max_errors.into(), 1),
        at_least(
            "submission.max_messages_per_hour",
            config.submission.max_messages_per_hour.into(),
            1,
        ),
        at_least(
            "submission.max_recipients",
            config.submission.max_recipients.into(),
            1,
        ),
        connection_caps(
            "imap",
            config.imap.max_connections,
            config.imap.max_connections_per_ip,
        ),
        connection_caps(
            "pop3",
            config.pop3.max_connections,
            config.pop3.max_connections_per_ip,
        ),
        at_least("dns.timeout_secs", config.dns.timeout_secs, 1),
        at_most(
            "dns.timeout_secs",
            config.dns.timeout_secs,
            MAX_DNS_TIMEOUT_SECS,
        ),
        at_least("queue.retry_base_secs", config.queue.retry_base_secs, 1),
        at_least(
            "queue.retry_max_secs",
            config.queue.retry_max_secs,
            config.queue.retry_base_secs,
        ),
        at_least("queue.lifetime_secs", config.queue.lifetime_secs, 1),
        at_least("queue.concurrency", config.queue.concurrency.into(), 1),
        at_least("queue.remote_port", config.queue.remote_port.into(), 1),
        non_blank("log.level", &config.log.level),
    ];
    checks.into_iter().flatten().next()
}

/// A host name as RFC 5321 §4.1.2 `Domain` allows it: dot-separated labels of letters, digits
/// and inner hyphens (RFC 1123 §2.1), at most 63 octets each and 253 in all.
pub fn check_hostname(hostname: &str) -> Result<(), String> {
    if hostname.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if hostname.len() > 253 {
        return Err("longer than 253 characters".to_owned());
    }
    if hostname.chars().any(char::is_whitespace) {
        return Err(format!("\"{hostname}\" must not contain spaces"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if hostname.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "\"{hostname}\" is not a valid host name (letters, digits, '-' and '.' only, e.g. mail.example.org)"
        ))
    }
}

/// Two listeners on one address would fail at bind time; say so while the file is at hand.
fn duplicate_listener(config: &Config) -> Option<(String, String)> {
    let enabled = config.listen.enabled();
    for (i, (name, addr)) in enabled.iter().enumerate() {
        let earlier = enabled.iter().take(i).find(|(_, other)| other == addr);
        if let Some((other_name, _)) = earlier {
            return Some((
                format!("listen.{name}"),
                format!("address {addr} is already used by listen.{other_name}"),
            ));
        }
    }
    None
}

fn non_empty_path(key: &str, p: &Path) -> Option<(String, String)> {
    p.as_os_str()
        .is_empty()
        .then(|| (key.to_owned(), "path must not be empty".to_owned()))
}

fn non_blank(key: &str, value: &str) -> Option<(String, String)> {
    value
        .trim()
        .is_empty()
        .then(|| (key.to_owned(), "must not be empty".to_owned()))
}

/// `max_connections` and `max_connections_per_ip` of `section`: both at least 1 (0 would mean
/// "unlimited" to the listener, which no one should get by a typo), and the per-IP cap no
/// larger than the total, which it could never reach.
fn connection_caps(section: &str, total: u32, per_ip: u32) -> Option<(String, String)> {
    let total_key = format!("{section}.max_connections");
    let per_ip_key = format!("{section}.max_connections_per_ip");
    at_least(&total_key, total.into(), 1)
        .or_else(|| at_least(&per_ip_key, per_ip.into(), 1))
        .or_else(|| {
            (per_ip > total).then(|| {
                (
                    per_ip_key,
                    format!("must not exceed {total_key} ({total}), got {per_ip}"),
                )
            })
        })
}

fn at_least(key: &str, value: u64, min: u64) -> Option<(String, String)> {
    (value < min).then(|| {
        (
            key.to_owned(),
            format!("must be at least {min}, got {value}"),
        )
    })
}

fn at_most(key: &str, value: u64, max: u64) -> Option<(String, String)> {
    (value > max).then(|| {
        (
            key.to_owned(),
            format!("must be at most {max}, got {value}"),
        )
    })
}

/// Line where dotted `key` is written, found by walking the spanned document.
pub(crate) fn key_line(text: &str, key: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(line_of(text, k.span().start));
        }
        match v.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => return None,
        }
    }
    None
}
