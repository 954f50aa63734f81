//! `postkeep serve`: every configured listener over one store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postkeep_auth::login::Authenticator;
use postkeep_auth::Throttle;
use postkeep_config::Config;
use postkeep_delivery::Deliverer;
use postkeep_imap::{ImapServer, ImapSettings};
use postkeep_net::dns::{DnsSettings, Resolver};
use postkeep_net::Security;
use postkeep_outbound::{Queue, QueueSettings};
use postkeep_pop3::{Pop3Server, Pop3Settings};
use postkeep_smtp::{Mode, SmtpServer, SmtpSettings};
use postkeep_store::{BlobArea, MailStore};
use postkeep_submission::{Submission, SubmissionSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::datadir::DataDir;

/// Files in the temp and smtp-incoming areas older than this are deleted.
const TEMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Blobs without a message row are swept only when older than this (deliveries in flight).
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);
/// How long running sessions get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub async fn serve(data: &Path, dev: bool) -> anyhow::Result<()> {
    if dev && !data.join(postkeep_config::CONFIG_FILE_NAME).exists() {
        crate::init::init(data, None, true).await?;
    }
    let dir = DataDir::load(data)?;
    init_logging(&dir.config);
    let store = Arc::new(dir.open_store().await?);
    let tls = load_tls(&dir)?;
    // Spool files of a previous process are sealed with keys that died with it: unreadable.
    expire_area(&store, BlobArea::SmtpIncoming, Duration::ZERO).await?;

    // One login path and one throttle for every protocol, so guessing cannot spread over them.
    let auth = Arc::new(Authenticator::new(Arc::clone(&store), Throttle::default()));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut servers = JoinSet::new();
    let listen = &dir.config.listen;
    // One resolver (one answer cache) for the queue's MX lookups and sender authentication.
    let dns = Resolver::new(&DnsSettings {
        nameservers: dir.config.dns.nameservers.clone(),
        timeout: dir.config.dns.timeout(),
    })
    .context("cannot set up DNS ([dns])")?;
    let stages = mx_stages(&dir.config, &dns);
    // The outbound queue always runs: it retries what earlier processes accepted and sends
    // DSNs. Its local copies and DSNs pass the MX stages marked as ours.
    let queue = Queue::open(
        Arc::clone(&store),
        Arc::new(Deliverer::new(Arc::clone(&store), stages.clone())),
        QueueSettings::new(&dir.config.hostname, &dir.config.queue),
        &dns,
    )
    .await
    .context("cannot open the outbound queue")?;
    let queue_task = tokio::spawn(Arc::clone(&queue).run(shutdown_rx.clone()));
    if let Some(addr) = listen.smtp {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for smtp on {addr}"))?;
        let deliverer = Arc::new(Deliverer::new(Arc::clone(&store), stages.clone()));
        let server = Arc::new(SmtpServer::new(
            smtp_settings(&dir.config),
            deliverer,
            tls.clone(),
        ));
        servers.spawn(server.serve(listener, shutdown_rx.clone()));
        println!(
            "smtp: listening on {addr}{}",
            if tls.is_some() { " (STARTTLS)" } else { "" }
        );
    }
    let submission_listeners = [
        (
            listen.submission,
            Security::StartTls,
            "submission (STARTTLS)",
        ),
        (listen.submissions, Security::ImplicitTls, "submissions"),
    ];
    if submission_listeners.iter().any(|(addr, ..)| addr.is_some()) {
        // RFC 8314 §4.1: TLS 1.3 only, as on imaps and pop3s; 587 requires STARTTLS anyway.
        let tls = load_tls13(&dir)?
            .context("submission and submissions need a TLS certificate in [tls]")?;
        let handler = Arc::new(Submission::new(
            Arc::clone(&store),
            Arc::clone(&auth),
            Arc::clone(&queue) as Arc<dyn postkeep_delivery::Outbox>,
            // Local recipients' copies pass the MX stages; inbound authentication skips them.
            stages.clone(),
            SubmissionSettings {
                max_messages_per_hour: dir.config.submission.max_messages_per_hour,
                sent_copy: dir.config.submission.sent_copy,
            },
        ));
        let server = Arc::new(SmtpServer::new(
            submission_settings(&dir.config),
            handler,
            Some(tls),
        ));
        bind_listeners(submission_listeners, |listener, security| {
            servers.spawn(Arc::clone(&server).serve_with(listener, security, shutdown_rx.clone()));
        })
        .await?;
    }
    let pop3_listeners = [
        (listen.pop3s, Security::ImplicitTls, "pop3s"),
        (listen.pop3, Security::StartTls, "pop3 (STLS)"),
    ];
    if pop3_listeners.iter().any(|(addr, ..)| addr.is_some()) {
        let tls = load_tls13(&dir)?.context("pop3 and pop3s need a TLS certificate in [tls]")?;
        let server = Arc::new(Pop3Server::new(
            Pop3Settings {
                max_connections: dir.config.pop3.max_connections as usize,
                max_connections_per_ip: dir.config.pop3.max_connections_per_ip as usize,
                ..Pop3Settings::default()
            },
            Arc::clone(&store),
            Arc::clone(&auth),
            tls,
        ));
        bind_listeners(pop3_listeners, |listener, security| {
            servers.spawn(Arc::clone(&server).serve(listener, security, shutdown_rx.clone()));
        })
        .await?;
    }
    let imap_listeners = [
        (listen.imaps, Security::ImplicitTls, "imaps"),
        (listen.imap, Security::StartTls, "imap (STARTTLS)"),
    ];
    if imap_listeners.iter().any(|(addr, ..)| addr.is_some()) {
        let tls = load_tls13(&dir)?.context("imap and imaps need a TLS certificate in [tls]")?;
        let server = Arc::new(ImapServer::new(
            ImapSettings {
                max_connections: dir.config.imap.max_connections as usize,
                max_connections_per_ip: dir.config.imap.max_connections_per_ip as usize,
                append_limit: dir.config.smtp.max_message_size,
                ..ImapSettings::default()
            },
            Arc::clone(&store),
            Arc::clone(&auth),
            tls,
        ));
        bind_listeners(imap_listeners, |listener, security| {
            servers.spawn(Arc::clone(&server).serve(listener, security, shutdown_rx.clone()));
        })
        .await?;
    }
    for (name, addr) in listen.enabled() {
        if !matches!(
            name,
            "smtp" | "submission" | "submissions" | "pop3" | "pop3s" | "imap" | "imaps"
        ) {
            tracing::warn!(listener = name, %addr, "listener configured but not available in this version");
        }
    }
    if servers.is_empty() {
        anyhow::bail!(
            "no listener in [listen] of {}: nothing to serve",
            data.display()
        );
    }
    spawn_housekeeping(Arc::clone(&store));
    if dev {
        print_dev_help(&dir);
    }
    tracing::info!("postkeep ready");

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(result) = servers.join_next() => {
            result.context("listener task failed")?.context("listener failed")?;
        }
    }
    let _ = shutdown.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
        // An attempt cut short here is retried at the next start (its lease runs out).
        let _ = queue_task.await;
    })
    .await;
    let crypto = postkeep_crypto::blob::timings();
    // Read by bench/smtp_ingest.py for the share of ingest time spent compressing + sealing.
    tracing::info!(
        seal_ms = crypto.seal_nanos / 1_000_000,
        open_ms = crypto.open_nanos / 1_000_000,
        "blob crypto time"
    );
    Ok(())
}

/// The delivery stages of mail received as MX: sender authentication (SPF, DKIM, ARC, DMARC)
/// unless `[inbound_auth]` turns it off.
/// Binds each configured `(address, security, name)` of one service and hands the listener to
/// `serve`; the service's listeners share one server (one connection cap, one set of per-IP
/// limits).
async fn bind_listeners(
    listeners: [(Option<SocketAddr>, Security, &str); 2],
    mut serve: impl FnMut(TcpListener, Security),
) -> anyhow::Result<()> {
    for (addr, security, name) in listeners {
        let Some(addr) = addr else { continue };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for {name} on {addr}"))?;
        serve(listener, security);
        println!("{name}: listening on {addr}");
    }
    Ok(())
}

fn mx_stages(config: &Config, dns: &Resolver) -> Vec<Arc<dyn postkeep_delivery::Stage>> {
    if !config.inbound_auth.enabled {
        return Vec::new();
    }
    let stage = postkeep_inbound_auth::InboundAuth::new(&config.hostname, dns);
    vec![Arc::new(stage)]
}

fn smtp_settings(config: &Config) -> SmtpSettings {
    let smtp = &config.smtp;
    SmtpSettings {
        hostname: config.hostname.clone(),
        max_message_size: smtp.max_message_size,
        max_recipients: smtp.max_recipients as usize,
        max_command_line: smtp.max_command_line,
        max_connections: smtp.max_connections as usize,
        max_connections_per_ip: smtp.max_connections_per_ip as usize,
        command_timeout: smtp.command_timeout(),
        data_timeout: smtp.data_timeout(),
        max_errors: smtp.max_errors,
        mode: Mode::Mx,
    }
}

/// The `[smtp]` limits with submission rules and `[submission] max_recipients`.
fn submission_settings(config: &Config) -> SmtpSettings {
    SmtpSettings {
        max_recipients: config.submission.max_recipients as usize,
        mode: Mode::Submission,
        ..smtp_settings(config)
    }
}

fn load_tls(dir: &DataDir) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (cert, key) = tls_paths(dir);
    if !cert.exists() && !key.exists() {
        tracing::warn!(cert = %cert.display(), "no TLS certificate: STARTTLS is not offered");
        return Ok(None);
    }
    crate::tls::server_config(&cert, &key).map(Some)
}

/// The pop3s configuration: TLS 1.3 only, `None` without a certificate.
fn load_tls13(dir: &DataDir) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (cert, key) = tls_paths(dir);
    if !cert.exists() && !key.exists() {
        return Ok(None);
    }
    crate::tls::server_config_tls13(&cert, &key).map(Some)
}

fn tls_paths(dir: &DataDir) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        dir.config.resolve(&dir.path, &dir.config.tls.cert),
        dir.config.resolve(&dir.path, &dir.config.tls.key),
    )
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald get plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Hourly (and at start): expire temporary files, sweep blobs orphaned by a crash.
fn spawn_housekeeping(store: Arc<MailStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            for area in [BlobArea::Temp, BlobArea::SmtpIncoming] {
                if let Err(e) = expire_area(&store, area, TEMP_MAX_AGE).await {
                    tracing::warn!(error = %e, area = area.as_str(), "expiry failed");
                }
            }
            match store.remove_orphan_blobs(ORPHAN_MIN_AGE).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed orphaned blobs"),
                Err(e) => tracing::warn!(error = %e, "orphan blob sweep failed"),
            }
        }
    });
}

/// Deletes the files of `area` older than `max_age`.
async fn expire_area(store: &MailStore, area: BlobArea, max_age: Duration) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now();
    for (id, modified) in store.blobs().list(area).await? {
        if now.duration_since(modified).unwrap_or_default() >= max_age {
            store.blobs().delete(area, &id).await?;
        }
    }
    Ok(())
}

fn print_dev_help(dir: &DataDir) {
    let Some(smtp) = dir.config.listen.smtp else {
        return;
    };
    let port = smtp.port();
    println!();
    println!(
        "postkeep dev instance ready (data in {})",
        dir.path.display()
    );
    println!("  send a test message:");
    println!(
        "    swaks --server 127.0.0.1:{port} --tls --to demo@example.test --from you@example.net"
    );
    if let Some(submissions) = dir.config.listen.submissions {
        println!("  send as demo (submissions, implicit TLS):");
        println!(
            "    swaks --server {submissions} --tlsc --auth-user demo@example.test --from demo@example.test --to demo@example.test"
        );
    }
    println!("  read it back:");
    if let Some(imaps) = dir.config.listen.imaps {
        println!(
            "    IMAP: any mail client, imaps on {imaps} (self-signed certificate), user demo@example.test;"
        );
        println!("    or: curl -k --user demo@example.test 'imaps://{imaps}/INBOX;UID=1'");
    }
    if let Some(imap) = dir.config.listen.imap {
        println!("    IMAP: imap on {imap} (STARTTLS before login)");
    }
    if let Some(pop3s) = dir.config.listen.pop3s {
        println!("    POP3: pop3s on {pop3s}");
    }
    if let Some(pop3) = dir.config.listen.pop3 {
        println!("    POP3: pop3 on {pop3} (STLS before login, self-signed certificate);");
        println!("    or: curl --ssl-reqd -k --user demo@example.test pop3://{pop3}/1");
    }
    println!(
        "    or export it: cargo run --release -- export demo@example.test /tmp/demo.mbox --data {}",
        dir.path.display()
    );
    println!("  stop with Ctrl-C");
}
