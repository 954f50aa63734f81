//! Loading, validating and generating `postkeep.toml`, the one configuration file that lives in
//! the data directory.
//!
//! Every error names the file, the 1-based line (when it can be located) and the dotted key, so an
//! operator can fix a typo without guessing; bad input never panics.
#![forbid(unsafe_code)]

mod dns;
mod error;
mod generate;
mod listen;
mod queue;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use dns::{Dns, InboundAuth};
pub use error::ConfigError;
pub use generate::{default_config, dev_config};
pub use queue::Queue;
pub use validate::check_hostname;

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE_NAME: &str = "postkeep.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our own name: SMTP greeting, EHLO reply, `Received:` headers and the authserv-id of
    /// `Authentication-Results:` (RFC 8601 §2.5).
    pub hostname: String,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub encryption: Encryption,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub smtp: SmtpSettings,
    #[serde(default)]
    pub submission: Submission,
    #[serde(default)]
    pub imap: Imap,
    #[serde(default)]
    pub pop3: Pop3,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub inbound_auth: InboundAuth,
    #[serde(default)]
    pub queue: Queue,
    #[serde(default)]
    pub log: Log,
}

/// Listening sockets; `None` means that listener is off.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub smtp: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub submission: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub submissions: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub imap: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub imaps: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub pop3: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub pop3s: Option<SocketAddr>,
    #[serde(default, deserialize_with = "listen::deserialize")]
    pub https: Option<SocketAddr>,
}

impl Listen {
    /// Listener names in file order, as accepted under `[listen]`.
    pub const NAMES: [&'static str; 8] = [
        "smtp",
        "submission",
        "submissions",
        "imap",
        "imaps",
        "pop3",
        "pop3s",
        "https",
    ];

    /// `(name, address)` for every configured listener, in [`Listen::NAMES`] order.
    pub fn enabled(&self) -> Vec<(&'static str, SocketAddr)> {
        let all = [
            self.smtp,
            self.submission,
            self.submissions,
            self.imap,
            self.imaps,
            self.pop3,
            self.pop3s,
            self.https,
        ];
        Self::NAMES
            .iter()
            .zip(all)
            .filter_map(|(name, addr)| addr.map(|a| (*name, a)))
            .collect()
    }
}

/// Certificate and key (PEM); relative paths are under the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    #[serde(default = "default_key")]
    pub key: PathBuf,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            cert: default_cert(),
            key: default_key(),
        }
    }
}

fn default_cert() -> PathBuf {
    PathBuf::from("tls/cert.pem")
}

fn default_key() -> PathBuf {
    PathBuf::from("tls/key.pem")
}

/// At-rest encryption settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Relative paths are under the data directory.
    #[serde(default = "default_master_key_file")]
    pub master_key_file: PathBuf,
    #[serde(default)]
    pub key_scope: KeyScope,
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption {
            master_key_file: default_master_key_file(),
            key_scope: KeyScope::default(),
        }
    }
}

fn default_master_key_file() -> PathBuf {
    PathBuf::from("master.key")
}

/// How widely one data-encryption key is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    /// One key for the whole installation.
    Deployment,
    /// One key per mail domain.
    Domain,
    /// One key per account: the narrowest blast radius.
    #[default]
    Account,
}

/// Where messages and metadata are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default)]
    pub backend: StorageBackend,
}

/// Storage implementation; only the embedded one exists for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// SQLite plus local files inside the data directory.
    #[default]
    Embedded,
}

/// Limits and timeouts of the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// Largest accepted message in bytes (advertised with `SIZE`, RFC 1870).
    pub max_message_size: u64,
    /// `RCPT TO` commands accepted per transaction.
    pub max_recipients: u32,
    /// Longest command line in bytes, CRLF included.
    pub max_command_line: usize,
    /// Simultaneous connections over all clients.
    pub max_connections: u32,
    /// Simultaneous connections from one IP address.
    pub max_connections_per_ip: u32,
    /// Idle time allowed while waiting for a command.
    pub command_timeout_secs: u64,
    /// Time allowed for each read of the DATA body.
    pub data_timeout_secs: u64,
    /// Protocol errors tolerated before `421` and disconnect.
    pub max_errors: u32,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 2048,
            max_connections: 1000,
            max_connections_per_ip: 20,
            // RFC 5321 §4.5.3.2.7: server timeout of at least 5 minutes.
            command_timeout_secs: 300,
            // RFC 5321 §4.5.3.2.5: 3 minutes per data block.
            data_timeout_secs: 180,
            max_errors: 10,
        }
    }
}

impl SmtpSettings {
    /// [`SmtpSettings::command_timeout_secs`] as a duration.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }

    /// [`SmtpSettings::data_timeout_secs`] as a duration.
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

/// Message submission (RFC 6409) on the `submission` and `submissions` listeners. Connection
/// limits, timeouts and the message size are those of `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Submission {
    /// Messages one account may send per rolling hour; more get `451 4.7.1` until the
    /// hour has passed.
    pub max_messages_per_hour: u32,
    /// Recipients per message; more get `452 4.5.3`.
    pub max_recipients: u32,
    /// Store a copy of every sent message in the account's Sent mailbox.
    pub sent_copy: bool,
}

impl Default for Submission {
    fn default() -> Self {
        Submission {
            max_messages_per_hour: 200,
            max_recipients: 50,
            sent_copy: true,
        }
    }
}

/// Connection caps of the IMAP server, shared by the `imap` and `imaps` listeners. Connections
/// are counted from accept, before login: unlike Dovecot's `mail_max_userip_connections` (per
/// user and IP), `max_connections_per_ip` counts every connection from one address, and
/// `max_connections` plays the part of Dovecot's `process_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imap {
    /// Simultaneous connections over all clients.
    pub max_connections: u32,
    /// Simultaneous connections from one IP address.
    pub max_connections_per_ip: u32,
}

impl Default for Imap {
    fn default() -> Self {
        // IMAP clients keep connections open (IDLE, one per watched mailbox), hence caps well
        // above those of POP3 and SMTP.
        Imap {
            max_connections: 10_000,
            max_connections_per_ip: 50,
        }
    }
}

/// Connection caps of the POP3 server, shared by the `pop3` and `pop3s` listeners, counted from
/// accept like [`Imap`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3 {
    /// Simultaneous connections over all clients.
    pub max_connections: u32,
    /// Simultaneous connections from one IP address.
    pub max_connections_per_ip: u32,
}

impl Default for Pop3 {
    fn default() -> Self {
        Pop3 {
            max_connections: 1000,
            max_connections_per_ip: 20,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a tracing filter directive.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            listen: Listen::default(),
            tls: Tls::default(),
            encryption: Encryption::default(),
            storage: Storage::default(),
            smtp: SmtpSettings::default(),
            submission: Submission::default(),
            imap: Imap::default(),
            pop3: Pop3::default(),
            dns: Dns::default(),
            inbound_auth: InboundAuth::default(),
            queue: Queue::default(),
            log: Log::default(),
        }
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&text, path)
    }

    /// Parses and validates `text`; `path_for_messages` only appears in error messages.
    pub fn from_toml_str(text: &str, path_for_messages: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| error::syntax(text, path_for_messages, &e))?;
        let config: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| error::data(text, path_for_messages, &e))?;
        validate::validate(&config, text, path_for_messages)?;
        Ok(config)
    }

    /// `p` itself when absolute, otherwise `p` under `data_dir`.
    pub fn resolve(&self, data_dir: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        }
    }

    /// Writes a freshly generated configuration (see [`dev_config`], [`default_config`]),
    /// refusing to replace an existing file so `init` never clobbers an operator's edits.
    pub fn write_new(path: &Path, text: &str) -> Result<(), ConfigError> {
        use std::io::Write;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}
