//! `postkeep domain dns` and `postkeep domain dkim ...`: the records a domain publishes and
//! its DKIM keys. The records themselves are built by `postkeep_dkim::dns`.

use std::path::Path;

use postkeep_config::Config;
use postkeep_dkim::dns::{MailHost, ZoneRequest};
use postkeep_dkim::DomainKeys;
use postkeep_store::{DkimKey, MailStore, Recipient};

use crate::datadir::DataDir;
use crate::DkimAction;

/// Where DMARC aggregate and TLS reports go: the address RFC 5321 §4.5.1 requires anyway.
const REPORT_LOCAL_PART: &str = "postmaster";

/// The domain's keys, created if it has none yet (domains added before DKIM existed).
async fn ensure_keys(store: &MailStore, domain: &str) -> anyhow::Result<DomainKeys> {
    DomainKeys::ensure(store, domain)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no domain {domain} (add it with `postkeep domain add`)"))
}

/// Creates a new domain's DKIM keys and says how to publish them.
pub async fn create_keys(store: &MailStore, domain: &str) -> anyhow::Result<()> {
    let keys = ensure_keys(store, domain).await?;
    println!(
        "DKIM keys: {}; publish the DNS records: postkeep domain dns {}",
        describe(keys.signing()),
        keys.domain()
    );
    Ok(())
}

fn describe<'a>(keys: impl Iterator<Item = &'a DkimKey>) -> String {
    keys.map(|k| format!("{} ({})", k.selector, k.algorithm.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn date(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_default()
}

fn state(key: &DkimKey) -> String {
    match (key.activated, key.retired) {
        (_, Some(at)) => format!("retired {}", date(at)),
        (Some(_), None) => "signing".to_string(),
        (None, None) => "staged".to_string(),
    }
}

fn mail_host(config: &Config) -> MailHost {
    let port = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.port());
    let listen = &config.listen;
    MailHost {
        hostname: config.hostname.clone(),
        submission: port(listen.submission),
        submissions: port(listen.submissions),
        imap: port(listen.imap),
        imaps: port(listen.imaps),
        pop3: port(listen.pop3),
        pop3s: port(listen.pop3s),
        https: port(listen.https),
    }
}

/// Prints the zone-file lines to publish; creates the DKIM keys first if the domain has none.
pub async fn print_records(data: &Path, domain: &str) -> anyhow::Result<()> {
    let dir = DataDir::load(data)?;
    let store = dir.open_store().await?;
    let keys = ensure_keys(&store, domain).await?;
    if keys.created() {
        // Standard error: standard output is only zone-file lines.
        eprintln!(
            "postkeep: created the DKIM keys of {}: {}",
            keys.domain(),
            describe(keys.signing())
        );
    }
    let report_address = format!("{REPORT_LOCAL_PART}@{}", keys.domain());
    let report_address_exists = matches!(
        store.resolve_recipient(&report_address).await?,
        Recipient::Local(_)
    );
    let host = mail_host(&dir.config);
    print!(
        "{}",
        postkeep_dkim::dns::zone(&ZoneRequest {
            domain: keys.domain(),
            host: &host,
            dkim_keys: keys.keys(),
            report_address: &report_address,
            report_address_exists,
        })
    );
    Ok(())
}

pub async fn dkim(action: DkimAction) -> anyhow::Result<()> {
    match action {
        DkimAction::List { domain, data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            for key in ensure_keys(&store, &domain).await?.keys() {
                println!(
                    "{}\t{}\t{}\t{}",
                    key.selector,
                    key.algorithm.as_str(),
                    date(key.created),
                    state(key)
                );
            }
        }
        DkimAction::Rotate { domain, data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let keys = DomainKeys::rotate(&store, &domain).await?;
            println!(
                "staged DKIM keys for {}: {}",
                keys.domain(),
                describe(keys.pending())
            );
            println!(
                "publish them (postkeep domain dns {d}), give DNS caches a day, then run \
                 `postkeep domain dkim activate {d}`",
                d = keys.domain()
            );
        }
        DkimAction::Activate { domain, data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let keys = DomainKeys::activate(&store, &domain).await?;
            println!(
                "{} now signs with {}",
                keys.domain(),
                describe(keys.signing())
            );
            println!(
                "keep the retired keys published for a week or so, then remove them with \
                 `postkeep domain dkim remove {} SELECTOR`",
                keys.domain()
            );
        }
        DkimAction::Remove {
            domain,
            selector,
            data,
        } => {
            let store = DataDir::load(&data)?.open_store().await?;
            DomainKeys::remove(&store, &domain, &selector).await?;
            println!("removed DKIM key {selector}; delete its DNS record too");
        }
    }
    Ok(())
}
