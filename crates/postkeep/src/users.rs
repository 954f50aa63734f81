//! `postkeep domain ...` and `postkeep user ...`.

use std::io::BufRead;

use anyhow::Context;
use postkeep_auth::login::app_password_key;
use postkeep_store::{Account, MailStore};
use zeroize::Zeroizing;

use crate::datadir::DataDir;
use crate::{AppPasswordAction, DomainAction, UserAction};

async fn open(data: &std::path::Path) -> anyhow::Result<MailStore> {
    DataDir::load(data)?.open_store().await
}

pub async fn domain(action: DomainAction) -> anyhow::Result<()> {
    match action {
        DomainAction::Add { domain, data } => {
            let store = open(&data).await?;
            let domain = store.add_domain(&domain).await?;
            println!("added domain {}", domain.name);
            crate::dns::create_keys(&store, &domain.name).await?;
        }
        DomainAction::List { data } => {
            for domain in open(&data).await?.meta().list_domains().await? {
                println!("{}", domain.name);
            }
        }
        DomainAction::Remove { domain, data } => {
            let name = postkeep_store::normalize_domain(&domain)?;
            open(&data).await?.meta().remove_domain(&name).await?;
            println!("removed domain {name}");
        }
        DomainAction::Dns { domain, data } => crate::dns::print_records(&data, &domain).await?,
        DomainAction::Dkim { action } => crate::dns::dkim(action).await?,
    }
    Ok(())
}

/// One line from standard input without its line ending; never echoed or logged.
fn read_secret_line(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        anyhow::bail!("empty {what} on standard input");
    }
    Ok(trimmed)
}

pub(crate) async fn account(store: &MailStore, address: &str) -> anyhow::Result<Account> {
    store
        .find_account(address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account {address}"))
}

pub async fn user(action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Add {
            address,
            data,
            password_hash_stdin,
            ..
        } => {
            let hash = if password_hash_stdin {
                let hash = read_secret_line("password hash")?;
                if !(hash.starts_with("$argon2id$") || hash.starts_with("$2")) {
                    anyhow::bail!("unsupported password hash: expected $argon2id$ or bcrypt $2b$");
                }
                hash.to_string()
            } else {
                postkeep_auth::hash_password_async(read_secret_line("password")?).await?
            };
            let account = open(&data)
                .await?
                .create_account(&address, Some(&hash))
                .await?;
            println!("added {}", account.address);
        }
        UserAction::List { data } => {
            for account in open(&data).await?.meta().list_accounts().await? {
                println!("{}", account.address);
            }
        }
        UserAction::Passwd { address, data, .. } => {
            let store = open(&data).await?;
            let account = account(&store, &address).await?;
            let hash = postkeep_auth::hash_password_async(read_secret_line("password")?).await?;
            store.meta().set_password_hash(account.id, &hash).await?;
            println!("password changed for {}", account.address);
        }
        UserAction::Remove { address, data } => {
            open(&data).await?.remove_account(&address).await?;
            println!("removed {address} and all its mail");
        }
        UserAction::AppPassword { action } => app_password(action).await?,
    }
    Ok(())
}

async fn app_password(action: AppPasswordAction) -> anyhow::Result<()> {
    match action {
        AppPasswordAction::Add {
            address,
            name,
            data,
        } => {
            let store = open(&data).await?;
            let account = account(&store, &address).await?;
            let secret = postkeep_auth::generate_app_password()?;
            let digest = app_password_key(&store).await?.digest(&secret);
            store
                .meta()
                .add_app_password(account.id, &name, &digest)
                .await?;
            println!(
                "app password {name} for {}: {}",
                account.address,
                secret.as_str()
            );
            println!("(shown once; revoke with `postkeep user app-password revoke`)");
        }
        AppPasswordAction::List { address, data } => {
            let store = open(&data).await?;
            let account = account(&store, &address).await?;
            for app in store.meta().list_app_passwords(account.id).await? {
                let created = chrono::DateTime::from_timestamp(app.created, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default();
                println!("{}\t{created}", app.name);
            }
        }
        AppPasswordAction::Revoke {
            address,
            name,
            data,
        } => {
            let store = open(&data).await?;
            let account = account(&store, &address).await?;
            if !store.meta().revoke_app_password(account.id, &name).await? {
                anyhow::bail!("{} has no app password named {name}", account.address);
            }
            println!("revoked app password {name}");
        }
    }
    Ok(())
}
