//! `postkeep`: one binary over small crates. This file only parses the command line and
//! dispatches; each command lives in its own module.
#![forbid(unsafe_code)]

mod aliases;
mod datadir;
mod dns;
mod init;
mod keys;
mod queue;
mod serve;
mod tls;
mod transfer;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Where `--dev` keeps its data when no `--data` is given.
const DEV_DATA_DIR: &str = "dev-data";

#[derive(Parser)]
#[command(
    name = "postkeep",
    version,
    about = "A self-hosted mail server that encrypts everything derived from mail at rest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: config, master key, database (and with --dev a test certificate, domain and user).
    Init {
        #[arg(long)]
        data: Option<PathBuf>,
        /// A first mail domain to serve.
        #[arg(long)]
        domain: Option<String>,
        /// Loopback listeners on high ports, a self-signed certificate and a demo user.
        #[arg(long)]
        dev: bool,
    },
    /// Run every listener configured in DIR/postkeep.toml.
    Serve {
        #[arg(long)]
        data: Option<PathBuf>,
        /// Initialise a development data directory first if there is none.
        #[arg(long)]
        dev: bool,
    },
    /// Manage mail domains.
    Domain {
        #[command(subcommand)]
        action: DomainAction,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage aliases: extra addresses in our domains delivering to an account.
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
    /// Import a Maildir, an mbox, a single message or a folder of message files into an account's INBOX.
    Import {
        address: String,
        path: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
    /// Export every message of an account.
    Export {
        address: String,
        path: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Mbox)]
        format: ExportFormat,
    },
    /// Rotate data keys or the master key.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Inspect the outbound queue: list, retry now, remove.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Every queued message with its recipients' status and last reply.
    List {
        #[arg(long)]
        data: PathBuf,
    },
    /// Try again now: one message, or every message when ID is omitted.
    Retry {
        id: Option<String>,
        #[arg(long)]
        data: PathBuf,
    },
    /// Drop a message without delivering it or notifying its sender.
    Remove {
        id: String,
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum DomainAction {
    /// Add a domain and create its DKIM keys (ed25519 and RSA-2048).
    Add {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    List {
        #[arg(long)]
        data: PathBuf,
    },
    Remove {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Print the DNS records to publish (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, client SRV).
    Dns {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Manage a domain's DKIM keys.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
}

#[derive(Subcommand)]
enum DkimAction {
    /// List the keys: selector, algorithm, creation date, and whether they still sign.
    List {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Stage new keys under new selectors: published by `domain dns`, signing only once activated.
    Rotate {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Sign with the staged keys from now on; the old ones stay published (retired).
    Activate {
        domain: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Delete a retired key (then remove its DNS record), or a staged one (cancelling the rotation).
    Remove {
        domain: String,
        selector: String,
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account; the password (or an existing hash) is read from standard input.
    #[command(group(clap::ArgGroup::new("secret").required(true)))]
    Add {
        address: String,
        #[arg(long)]
        data: PathBuf,
        /// Read the password from standard input (passwords never go on the command line).
        #[arg(long, group = "secret")]
        password_stdin: bool,
        /// Read an existing password hash ($argon2id$ or bcrypt $2b$) from standard input
        /// instead, when migrating from another host; bcrypt is upgraded at the next login.
        #[arg(long, group = "secret")]
        password_hash_stdin: bool,
    },
    List {
        #[arg(long)]
        data: PathBuf,
    },
    /// Change an account's password (read from standard input).
    Passwd {
        address: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    Remove {
        address: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Named, revocable app passwords for mail clients.
    AppPassword {
        #[command(subcommand)]
        action: AppPasswordAction,
    },
}

#[derive(Subcommand)]
enum AliasAction {
    /// Deliver mail for ADDRESS to ACCOUNT (which may then also send as ADDRESS).
    Add {
        address: String,
        account: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Every alias as `alias -> account`, sorted.
    List {
        #[arg(long)]
        data: PathBuf,
        /// Only the aliases in this domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Stop delivering mail for ADDRESS (the account and its mail stay).
    Remove {
        address: String,
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum AppPasswordAction {
    /// Create one and print it (it is shown only once).
    Add {
        address: String,
        name: String,
        #[arg(long)]
        data: PathBuf,
    },
    List {
        address: String,
        #[arg(long)]
        data: PathBuf,
    },
    Revoke {
        address: String,
        name: String,
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Give every key scope (or one) a new data key for new data; old keys stay readable.
    Rotate {
        #[arg(long)]
        data: PathBuf,
        /// Only this scope, e.g. `account:3`, `domain:1` or `deployment`.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Re-wrap every data key under a new master key (blobs are untouched).
    RotateMaster {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Mbox,
    Maildir,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("postkeep: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postkeep: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dev_dir = || PathBuf::from(DEV_DATA_DIR);
    match cli.command {
        Command::Init { data, domain, dev } => {
            let data = data.or_else(|| dev.then(dev_dir)).ok_or_else(|| {
                anyhow::anyhow!("--data DIR is required (or --dev for ./{DEV_DATA_DIR})")
            })?;
            init::init(&data, domain.as_deref(), dev).await
        }
        Command::Serve { data, dev } => {
            let data = data.or_else(|| dev.then(dev_dir)).ok_or_else(|| {
                anyhow::anyhow!("--data DIR is required (or --dev for ./{DEV_DATA_DIR})")
            })?;
            serve::serve(&data, dev).await
        }
        Command::Domain { action } => users::domain(action).await,
        Command::User { action } => users::user(action).await,
        Command::Alias { action } => aliases::alias(action).await,
        Command::Import {
            address,
            path,
            data,
        } => transfer::import(&data, &address, &path).await,
        Command::Export {
            address,
            path,
            data,
            format,
        } => transfer::export(&data, &address, &path, format).await,
        Command::Keys { action } => keys::keys(action).await,
        Command::Queue { action } => queue::queue(action).await,
    }
}
