//! Loading `postkeep.toml`: defaults, generated files and every kind of error message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use postkeep_config::{
    default_config, dev_config, Config, ConfigError, Dns, Imap, InboundAuth, KeyScope, Pop3, Queue,
    SmtpSettings, StorageBackend, Submission,
};

const FILE: &str = "/data/postkeep.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new(FILE))
}

fn parse_err(text: &str) -> (ConfigError, String) {
    match parse(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(e) => {
            let shown = e.to_string();
            (e, shown)
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let config = parse("hostname = \"mail.example.org\"\n").unwrap();
    assert_eq!(config, Config::new("mail.example.org"));
    assert_eq!(config.listen.enabled(), vec![]);
    assert_eq!(config.tls.cert, PathBuf::from("tls/cert.pem"));
    assert_eq!(config.tls.key, PathBuf::from("tls/key.pem"));
    assert_eq!(
        config.encryption.master_key_file,
        PathBuf::from("master.key")
    );
    assert_eq!(config.encryption.key_scope, KeyScope::Account);
    assert_eq!(config.storage.backend, StorageBackend::Embedded);
    assert_eq!(config.smtp.max_message_size, 52_428_800);
    assert_eq!(config.smtp.max_recipients, 100);
    assert_eq!(config.smtp.max_command_line, 2048);
    assert_eq!(config.smtp.max_connections, 1000);
    assert_eq!(config.smtp.max_connections_per_ip, 20);
    assert_eq!(config.smtp.command_timeout().as_secs(), 300);
    assert_eq!(config.smtp.data_timeout().as_secs(), 180);
    assert_eq!(config.smtp.max_errors, 10);
    assert_eq!(config.submission.max_messages_per_hour, 200);
    assert_eq!(config.submission.max_recipients, 50);
    assert!(config.submission.sent_copy);
    // The caps the IMAP and POP3 servers had before they were configurable.
    assert_eq!(config.imap.max_connections, 10_000);
    assert_eq!(config.imap.max_connections_per_ip, 50);
    assert_eq!(config.pop3.max_connections, 1000);
    assert_eq!(config.pop3.max_connections_per_ip, 20);
    assert!(
        config.dns.nameservers.is_empty(),
        "system resolver by default"
    );
    assert_eq!(config.dns.timeout().as_secs(), 5);
    assert!(config.inbound_auth.enabled);
    assert_eq!(config.queue.retry_base().as_secs(), 300);
    assert_eq!(config.queue.retry_max().as_secs(), 3600);
    assert_eq!(config.queue.lifetime().as_secs(), 5 * 24 * 3600);
    assert_eq!(
        config.queue.delay_notice().map(|d| d.as_secs()),
        Some(4 * 3600)
    );
    assert_eq!(config.queue.concurrency, 16);
    assert_eq!(config.queue.remote_port, 25);
    assert_eq!(config.log.level, "info");
}

#[test]
fn full_file_overrides_every_key() {
    let text = r#"
hostname = "mx.example.net"
[listen]
smtp = "0.0.0.0:25"
submission = "[::1]:587"
submissions = "[::]:465"
imap = "127.0.0.1:143"
imaps = "127.0.0.1:993"
pop3 = "127.0.0.1:110"
pop3s = "127.0.0.1:995"
https = "127.0.0.1:443"
[tls]
cert = "/etc/certs/fullchain.pem"
key = "k.pem"
[encryption]
master_key_file = "keys/master"
key_scope = "domain"
[storage]
backend = "embedded"
[smtp]
max_message_size = 1000
max_recipients = 5
max_command_line = 512
max_connections = 2
max_connections_per_ip = 1
command_timeout_secs = 30
data_timeout_secs = 20
max_errors = 3
[submission]
max_messages_per_hour = 7
max_recipients = 4
sent_copy = false
[imap]
max_connections = 300
max_connections_per_ip = 2
[pop3]
max_connections = 40
max_connections_per_ip = 4
[dns]
nameservers = ["127.0.0.1:5353", "[::1]:53"]
timeout_secs = 2
[inbound_auth]
enabled = false
[queue]
retry_base_secs = 2
retry_max_secs = 8
lifetime_secs = 60
delay_notice_secs = 0
concurrency = 3
remote_port = 2525
[log]
level = "debug"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.hostname, "mx.example.net");
    assert_eq!(config.listen.smtp, Some(addr("0.0.0.0:25")));
    assert_eq!(config.listen.submission, Some(addr("[::1]:587")));
    assert_eq!(config.listen.submissions, Some(addr("[::]:465")));
    assert_eq!(config.listen.https, Some(addr("127.0.0.1:443")));
    assert_eq!(config.listen.pop3, Some(addr("127.0.0.1:110")));
    assert_eq!(config.listen.enabled().len(), 8);
    assert_eq!(config.tls.cert, PathBuf::from("/etc/certs/fullchain.pem"));
    assert_eq!(config.encryption.key_scope, KeyScope::Domain);
    assert_eq!(
        config.smtp,
        SmtpSettings {
            max_message_size: 1000,
            max_recipients: 5,
            max_command_line: 512,
            max_connections: 2,
            max_connections_per_ip: 1,
            command_timeout_secs: 30,
            data_timeout_secs: 20,
            max_errors: 3,
        }
    );
    assert_eq!(
        config.submission,
        Submission {
            max_messages_per_hour: 7,
            max_recipients: 4,
            sent_copy: false,
        }
    );
    assert_eq!(
        config.imap,
        Imap {
            max_connections: 300,
            max_connections_per_ip: 2,
        }
    );
    assert_eq!(
        config.pop3,
        Pop3 {
            max_connections: 40,
            max_connections_per_ip: 4,
        }
    );
    assert_eq!(
        config.dns,
        Dns {
            nameservers: vec![addr("127.0.0.1:5353"), addr("[::1]:53")],
            timeout_secs: 2,
        }
    );
    assert_eq!(config.inbound_auth, InboundAuth { enabled: false });
    assert_eq!(
        config.queue,
        Queue {
            retry_base_secs: 2,
            retry_max_secs: 8,
            lifetime_secs: 60,
            delay_notice_secs: 0,
            concurrency: 3,
            remote_port: 2525,
        }
    );
    assert_eq!(config.queue.delay_notice(), None);
    assert_eq!(config.log.level, "debug");
}

#[test]
fn listener_accepts_resolvable_host_name() {
    let config = parse("hostname = \"a.example\"\n[listen]\nsmtp = \"localhost:2525\"\n").unwrap();
    let smtp = config.listen.smtp.unwrap();
    assert!(smtp.ip().is_loopback(), "{smtp}");
    assert_eq!(smtp.port(), 2525);
}

#[test]
fn resolve_keeps_absolute_and_joins_relative_paths() {
    let config = Config::new("a.example");
    let data = Path::new("/data");
    assert_eq!(
        config.resolve(data, Path::new("tls/cert.pem")),
        PathBuf::from("/data/tls/cert.pem")
    );
    assert_eq!(
        config.resolve(data, Path::new("/etc/key.pem")),
        PathBuf::from("/etc/key.pem")
    );
}

// ---- error messages: file, line and key ----

#[test]
fn wrong_type_names_file_line_and_key() {
    let text = "hostname = \"a.example\"\n\n\n[listen]\n\n[smtp]\nmax_recipients = \"x\"\n";
    let (e, shown) = parse_err(text);
    assert_eq!(
        shown,
        "/data/postkeep.toml:7: key `smtp.max_recipients`: invalid type: string \"x\", expected u32"
    );
    assert_eq!(e.line(), Some(7));
    assert_eq!(e.key(), Some("smtp.max_recipients"));
}

#[test]
fn out_of_range_integer_names_key() {
    let (_, shown) = parse_err("hostname = \"a.example\"\n[smtp]\nmax_errors = -1\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: key `smtp.max_errors`: "),
        "{shown}"
    );
}

#[test]
fn wrong_type_in_dotted_key_points_at_its_line() {
    let (_, shown) = parse_err("hostname = \"a.example\"\nsmtp.max_errors = true\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:2: key `smtp.max_errors`: invalid type"),
        "{shown}"
    );
}

#[test]
fn unknown_listener_lists_valid_names() {
    let text = "hostname = \"a.example\"\n[listen]\nsmtpp = \"127.0.0.1:25\"\n";
    let (_, shown) = parse_err(text);
    assert_eq!(
        shown,
        "/data/postkeep.toml:3: key `listen.smtpp`: unknown listener; expected one of smtp, \
         submission, submissions, imap, imaps, pop3, pop3s, https"
    );
}

#[test]
fn unknown_key_in_section_names_line_and_key() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n[smtp]\nmax_recipient = 5\n");
    assert!(shown.starts_with("/data/postkeep.toml:3: key `smtp.max_recipient`: unknown key; expected one of max_message_size,"), "{shown}");
    assert_eq!(e.line(), Some(3));
}

#[test]
fn unknown_top_level_key_and_table_are_rejected() {
    let (_, shown) = parse_err("hostname = \"a.example\"\nhost = \"b\"\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:2: key `host`: unknown key"),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"a.example\"\n\n[imap4]\nport = 1\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: key `imap4`: unknown key"),
        "{shown}"
    );
}

#[test]
fn unknown_key_in_every_table_is_rejected() {
    for table in [
        "listen",
        "tls",
        "encryption",
        "storage",
        "smtp",
        "submission",
        "imap",
        "pop3",
        "dns",
        "inbound_auth",
        "queue",
        "log",
    ] {
        let text = format!("hostname = \"a.example\"\n[{table}]\nnope = 1\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(e.key(), Some(format!("{table}.nope").as_str()), "{shown}");
        assert_eq!(e.line(), Some(3), "{shown}");
    }
}

#[test]
fn bad_socket_address_names_line_and_key() {
    let text =
        "hostname = \"a.example\"\n[listen]\nsmtp = \"127.0.0.1:2525\"\nimap = \"127.0.0.1\"\n";
    let (_, shown) = parse_err(text);
    assert!(
        shown.starts_with(
            "/data/postkeep.toml:4: key `listen.imap`: invalid socket address \"127.0.0.1\""
        ),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"a.example\"\n[listen]\nsmtp = 25\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: key `listen.smtp`: invalid type: integer `25`"),
        "{shown}"
    );
}

#[test]
fn bad_enum_value_names_key() {
    let (_, shown) = parse_err("hostname = \"a.example\"\n[encryption]\nkey_scope = \"user\"\n");
    assert!(
        shown.starts_with(
            "/data/postkeep.toml:3: key `encryption.key_scope`: unknown variant `user`"
        ),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"a.example\"\n[storage]\nbackend = \"s3\"\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: key `storage.backend`: unknown variant `s3`"),
        "{shown}"
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n\n[smtp\nmax_errors = 1\n");
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{shown}");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: TOML syntax error: "),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"a.example\"\nhostname = \"b.example\"\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:2: key `hostname`: TOML syntax error: "),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"unterminated\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:1: key `hostname`: TOML syntax error: "),
        "{shown}"
    );
}

#[test]
fn syntax_error_on_an_assignment_names_its_dotted_key() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n[smtp]\nmax_errors = = 10\n");
    assert_eq!(e.key(), Some("smtp.max_errors"), "{shown}");
    assert!(
        shown.starts_with("/data/postkeep.toml:3: key `smtp.max_errors`: TOML syntax error: "),
        "{shown}"
    );
}

#[test]
fn missing_hostname_is_named() {
    for text in ["", "[smtp]\nmax_errors = 3\n"] {
        let (e, shown) = parse_err(text);
        assert_eq!(
            shown,
            "/data/postkeep.toml: key `hostname`: required key is missing"
        );
        assert_eq!(e.line(), None);
    }
}

#[test]
fn missing_file_names_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postkeep.toml");
    let e = Config::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot read {}: No such file or directory", path.display())
    );
}

#[test]
fn non_utf8_file_is_a_read_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postkeep.toml");
    std::fs::write(&path, b"hostname = \"\xff\"\n").unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

// ---- semantic validation ----

#[test]
fn hostname_with_space_is_rejected_with_line() {
    let (_, shown) = parse_err("\nhostname = \"mail example\"\n");
    assert!(
        shown.starts_with("/data/postkeep.toml:2: key `hostname`: "),
        "{shown}"
    );
    assert!(shown.contains("spaces"), "{shown}");
}

#[test]
fn hostname_syntax_is_checked() {
    for bad in [
        "",
        "-a.example",
        "a..example",
        "a_b.example",
        "a.example.",
        "exa(mple",
    ] {
        let text = format!("hostname = \"{bad}\"\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(e.key(), Some("hostname"), "{bad}: {shown}");
        assert_eq!(e.line(), Some(1), "{bad}: {shown}");
    }
    for good in ["localhost", "mail.example.org", "MX-1.Example.COM", "a"] {
        assert!(postkeep_config::check_hostname(good).is_ok(), "{good}");
    }
}

#[test]
fn command_line_below_rfc_minimum_is_rejected() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n[smtp]\nmax_command_line = 511\n");
    assert_eq!(
        shown,
        "/data/postkeep.toml:3: key `smtp.max_command_line`: must be at least 512, got 511"
    );
    assert_eq!(e.key(), Some("smtp.max_command_line"));
    assert!(parse("hostname = \"a.example\"\n[smtp]\nmax_command_line = 512\n").is_ok());
}

#[test]
fn zero_limits_are_rejected_with_key_and_line() {
    for key in [
        "max_message_size",
        "max_recipients",
        "command_timeout_secs",
        "data_timeout_secs",
        "max_errors",
    ] {
        let text = format!("hostname = \"a.example\"\n[smtp]\n{key} = 0\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(e.key(), Some(format!("smtp.{key}").as_str()), "{shown}");
        assert_eq!(e.line(), Some(3), "{shown}");
    }
}

#[test]
fn zero_connection_caps_are_rejected_in_every_section() {
    for section in ["smtp", "imap", "pop3"] {
        for key in ["max_connections", "max_connections_per_ip"] {
            let text = format!("hostname = \"a.example\"\n[{section}]\n{key} = 0\n");
            let (_, shown) = parse_err(&text);
            assert_eq!(
                shown,
                format!("/data/postkeep.toml:3: key `{section}.{key}`: must be at least 1, got 0")
            );
        }
    }
}

#[test]
fn per_ip_cap_above_total_cap_is_rejected() {
    for section in ["smtp", "imap", "pop3"] {
        let text = format!(
            "hostname = \"a.example\"\n[{section}]\nmax_connections = 5\nmax_connections_per_ip = 6\n"
        );
        let (e, shown) = parse_err(&text);
        assert_eq!(
            shown,
            format!(
                "/data/postkeep.toml:4: key `{section}.max_connections_per_ip`: must not exceed \
                 {section}.max_connections (5), got 6"
            )
        );
        assert_eq!(
            e.key(),
            Some(format!("{section}.max_connections_per_ip").as_str())
        );
        let equal = text.replace("= 6", "= 5");
        assert!(parse(&equal).is_ok(), "{equal}");
    }
}

#[test]
fn per_ip_cap_is_checked_against_the_default_total() {
    // Only the per-IP cap written: it is compared with the default total (1000 for POP3).
    let (e, shown) = parse_err("hostname = \"a.example\"\n[pop3]\nmax_connections_per_ip = 1001\n");
    assert_eq!(e.key(), Some("pop3.max_connections_per_ip"), "{shown}");
    assert!(shown.contains("pop3.max_connections (1000)"), "{shown}");
}

#[test]
fn negative_connection_cap_names_key() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n[imap]\nmax_connections = -1\n");
    assert_eq!(e.key(), Some("imap.max_connections"), "{shown}");
    assert_eq!(e.line(), Some(3), "{shown}");
}

#[test]
fn zero_submission_limits_are_rejected_and_sent_copy_is_a_boolean() {
    for key in ["max_messages_per_hour", "max_recipients"] {
        let text = format!("hostname = \"a.example\"\n[submission]\n{key} = 0\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(
            e.key(),
            Some(format!("submission.{key}").as_str()),
            "{shown}"
        );
        assert_eq!(e.line(), Some(3), "{shown}");
    }
    let (e, shown) = parse_err("hostname = \"a.example\"\n[submission]\nsent_copy = 1\n");
    assert_eq!(e.key(), Some("submission.sent_copy"), "{shown}");
}

#[test]
fn nameserver_must_be_an_ip_and_port() {
    let text = "hostname = \"a.example\"\n[dns]\nnameservers = [\n  \"127.0.0.1:53\",\n  \"ns.example:53\",\n]\n";
    let (e, shown) = parse_err(text);
    assert_eq!(e.key(), Some("dns.nameservers[1]"), "{shown}");
    assert_eq!(e.line(), Some(5), "{shown}");
    assert!(
        shown.contains("invalid nameserver \"ns.example:53\": expected \"ip:port\""),
        "{shown}"
    );
    let (_, shown) = parse_err("hostname = \"a.example\"\n[dns]\nnameservers = [\"127.0.0.1\"]\n");
    assert!(
        shown.contains("invalid nameserver \"127.0.0.1\""),
        "{shown}"
    );
    let (e, shown) = parse_err("hostname = \"a.example\"\n[dns]\nnameservers = \"127.0.0.1:53\"\n");
    assert_eq!(e.key(), Some("dns.nameservers"), "{shown}");
    assert!(shown.contains("expected a list"), "{shown}");
}

#[test]
fn dns_timeout_is_bounded_both_ways() {
    for (value, message) in [
        (0, "must be at least 1, got 0"),
        (31, "must be at most 30, got 31"),
    ] {
        let text = format!("hostname = \"a.example\"\n[dns]\ntimeout_secs = {value}\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(
            shown,
            format!("/data/postkeep.toml:3: key `dns.timeout_secs`: {message}")
        );
        assert_eq!(e.line(), Some(3));
    }
    assert!(parse("hostname = \"a.example\"\n[dns]\ntimeout_secs = 30\n").is_ok());
}

#[test]
fn queue_retry_schedule_must_be_positive_and_ordered() {
    for (line, key) in [
        ("retry_base_secs = 0", "queue.retry_base_secs"),
        ("lifetime_secs = 0", "queue.lifetime_secs"),
        ("concurrency = 0", "queue.concurrency"),
        ("remote_port = 0", "queue.remote_port"),
        (
            "retry_base_secs = 600\nretry_max_secs = 60",
            "queue.retry_max_secs",
        ),
    ] {
        let text = format!("hostname = \"a.example\"\n[queue]\n{line}\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(e.key(), Some(key), "{shown}");
        assert!(e.line().is_some(), "{shown}");
    }
    assert!(parse("hostname = \"a.example\"\n[queue]\ndelay_notice_secs = 0\n").is_ok());
}

#[test]
fn inbound_auth_switch_must_be_a_boolean() {
    let (e, shown) = parse_err("hostname = \"a.example\"\n[inbound_auth]\nenabled = \"yes\"\n");
    assert_eq!(e.key(), Some("inbound_auth.enabled"), "{shown}");
    assert_eq!(e.line(), Some(3), "{shown}");
}

#[test]
fn empty_paths_and_log_level_are_rejected() {
    for (table, key) in [
        ("tls", "cert"),
        ("tls", "key"),
        ("encryption", "master_key_file"),
        ("log", "level"),
    ] {
        let text = format!("hostname = \"a.example\"\n[{table}]\n{key} = \"\"\n");
        let (e, shown) = parse_err(&text);
        assert_eq!(e.key(), Some(format!("{table}.{key}").as_str()), "{shown}");
        assert_eq!(e.line(), Some(3), "{shown}");
    }
}

#[test]
fn two_listeners_on_one_address_are_rejected() {
    let text = "hostname = \"a.example\"\n[listen]\nsmtp = \"127.0.0.1:2525\"\nimap = \"127.0.0.1:2525\"\n";
    let (_, shown) = parse_err(text);
    assert_eq!(
        shown,
        "/data/postkeep.toml:4: key `listen.imap`: address 127.0.0.1:2525 is already used by listen.smtp"
    );
}

// ---- generated files ----

fn write_and_load(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postkeep.toml");
    Config::write_new(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

#[test]
fn dev_config_loads_back_with_loopback_listener() {
    let text = dev_config("mail.example.test", 2525);
    let config = write_and_load(&text);
    assert_eq!(config.hostname, "mail.example.test");
    assert_eq!(
        config.listen.enabled(),
        vec![
            ("smtp", addr("127.0.0.1:2525")),
            ("submission", addr("127.0.0.1:2526")),
            ("submissions", addr("127.0.0.1:2527")),
            ("imap", addr("127.0.0.1:2528")),
            ("imaps", addr("127.0.0.1:2529")),
            ("pop3", addr("127.0.0.1:2530")),
            ("pop3s", addr("127.0.0.1:2531")),
        ]
    );
    assert_eq!(config.tls.cert, PathBuf::from("tls/cert.pem"));
    assert_eq!(config.tls.key, PathBuf::from("tls/key.pem"));
    assert_eq!(config.encryption.key_scope, KeyScope::Account);
    assert_eq!(config.smtp, SmtpSettings::default());
    assert_eq!(config.submission, Submission::default());
    assert_eq!(config.imap, Imap::default());
    assert_eq!(config.pop3, Pop3::default());
    assert_eq!(config.dns, Dns::default());
    assert_eq!(config.queue, Queue::default());
    // Local test senders cannot pass SPF/DKIM: verification is off in a development setup.
    assert_eq!(config.inbound_auth, InboundAuth { enabled: false });
    // Listeners not built yet are shown to the user, commented out, on the following ports.
    assert!(text.contains("# https = \"127.0.0.1:2532\"\n"), "{text}");
}

#[test]
fn default_config_loads_back_with_port_25() {
    let text = default_config("mx.example.org");
    let config = write_and_load(&text);
    assert_eq!(config.hostname, "mx.example.org");
    assert_eq!(
        config.listen.enabled(),
        vec![
            ("smtp", addr("0.0.0.0:25")),
            ("submission", addr("0.0.0.0:587")),
            ("submissions", addr("0.0.0.0:465")),
            ("imap", addr("0.0.0.0:143")),
            ("imaps", addr("0.0.0.0:993")),
            ("pop3", addr("0.0.0.0:110")),
            ("pop3s", addr("0.0.0.0:995")),
        ]
    );
    assert_eq!(config.encryption.key_scope, KeyScope::Account);
    assert_eq!(config.smtp, SmtpSettings::default());
    assert_eq!(config.imap, Imap::default());
    assert_eq!(config.pop3, Pop3::default());
    assert_eq!(config.dns, Dns::default());
    assert_eq!(config.queue, Queue::default());
    assert_eq!(config.inbound_auth, InboundAuth { enabled: true });
    assert!(text.contains("\n# https = \"0.0.0.0:"), "{text}");
}

#[test]
fn dev_config_with_highest_port_base_does_not_panic() {
    // The ports after 65535 saturate onto it: the listeners then clash, which is an error
    // naming the key, never a panic.
    match parse(&dev_config("a.example", u16::MAX)) {
        Ok(config) => assert_eq!(config.listen.smtp, Some(addr("127.0.0.1:65535"))),
        Err(error) => assert!(error.to_string().contains("listen"), "{error}"),
    }
}

#[test]
fn generated_config_escapes_hostname() {
    // A quote in the host name must stay inside the TOML string: the error is about the
    // hostname's value, not a syntax error in the generated file.
    let (e, shown) = parse_err(&dev_config("evil\"\nstorage = 1", 2525));
    assert_eq!(e.key(), Some("hostname"), "{shown}");
}

#[test]
fn write_new_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postkeep.toml");
    std::fs::write(&path, "hostname = \"keep.example\"\n").unwrap();
    let e = Config::write_new(&path, &default_config("other.example")).unwrap_err();
    assert!(e.to_string().starts_with("cannot write "), "{e}");
    assert_eq!(Config::load(&path).unwrap().hostname, "keep.example");
}
