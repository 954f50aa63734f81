//! `postkeep alias ...`: extra addresses delivering to an account. Addresses are stored the way
//! RCPT TO resolution looks them up: lower-cased by `normalize_address`, like accounts.

use postkeep_store::{normalize_address, normalize_domain, MailStore};

use crate::datadir::DataDir;
use crate::AliasAction;

pub async fn alias(action: AliasAction) -> anyhow::Result<()> {
    match action {
        AliasAction::Add {
            address,
            account,
            data,
        } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let account = crate::users::account(&store, &account).await?;
            let address = store.add_alias(&address, account.id).await?;
            println!("added alias {address} -> {}", account.address);
        }
        AliasAction::List { data, domain } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let domain = match domain {
                Some(domain) => Some(our_domain(&store, &domain).await?),
                None => None,
            };
            for alias in store.meta().list_aliases(domain.as_deref()).await? {
                println!("{} -> {}", alias.address, alias.account);
            }
        }
        AliasAction::Remove { address, data } => {
            let (address, _) = normalize_address(&address)?;
            let store = DataDir::load(&data)?.open_store().await?;
            store.meta().remove_alias(&address).await?;
            println!("removed alias {address}");
        }
    }
    Ok(())
}

/// The normalised name of `domain`, or an error if it is not one of ours.
async fn our_domain(store: &MailStore, domain: &str) -> anyhow::Result<String> {
    let name = normalize_domain(domain)?;
    if store.meta().find_domain(&name).await?.is_none() {
        anyhow::bail!(
            "{name} is not one of our domains (add it first with `postkeep domain add {name}`)"
        );
    }
    Ok(name)
}
