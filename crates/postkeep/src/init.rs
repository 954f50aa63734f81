//! `postkeep init`: a new data directory.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use postkeep_config::{Config, CONFIG_FILE_NAME};
use postkeep_crypto::MasterKey;
use zeroize::Zeroizing;

use crate::datadir::{sync_parent, DataDir};

/// Ports `--dev` listens on, starting with SMTP; all on loopback.
const DEV_PORT_BASE: u16 = 2525;
const DEV_DOMAIN: &str = "example.test";
const DEV_HOSTNAME: &str = "localhost";

pub async fn init(data: &Path, domain: Option<&str>, dev: bool) -> anyhow::Result<()> {
    let config_path = data.join(CONFIG_FILE_NAME);
    if config_path.exists() {
        anyhow::bail!(
            "{} already exists: this data directory is initialised",
            config_path.display()
        );
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("cannot create {}", data.display()))?;

    let text = if dev {
        postkeep_config::dev_config(DEV_HOSTNAME, DEV_PORT_BASE)
    } else {
        let hostname = domain.map_or_else(|| DEV_HOSTNAME.to_string(), |d| format!("mail.{d}"));
        postkeep_config::default_config(&hostname)
    };
    Config::write_new(&config_path, &text)?;
    let dir = DataDir::load(data)?;

    if DataDir::master_from_env() {
        println!("master key: taken from {}", crate::datadir::MASTER_KEY_ENV);
    } else {
        let key_path = dir.master_key_path();
        MasterKey::generate().write_new_file(&key_path)?;
        sync_parent(&key_path)?;
        println!(
            "master key: {} (mode 0600; back it up apart from the data)",
            key_path.display()
        );
    }
    let store = dir.open_store().await?;
    if dev {
        write_dev_certificate(&dir)?;
    }
    let domain = domain.or(dev.then_some(DEV_DOMAIN));
    if let Some(domain) = domain {
        let domain = store.add_domain(domain).await?;
        println!("domain: {}", domain.name);
        crate::dns::create_keys(&store, &domain.name).await?;
        if dev {
            let address = format!("demo@{}", domain.name);
            let password = demo_password();
            let hash = postkeep_auth::hash_password(&password)?;
            store.create_account(&address, Some(&hash)).await?;
            println!("demo user: {address}  password: {}", password.as_str());
        }
    }
    sync_parent(&config_path)?;
    println!("initialised {}", data.display());
    Ok(())
}

/// A readable random password for the demo account (printed once, stored only hashed).
fn demo_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    postkeep_crypto::random_bytes(&mut bytes);
    Zeroizing::new(
        bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect(),
    )
}

/// A self-signed certificate for localhost, so STARTTLS works out of the box in development.
fn write_dev_certificate(dir: &DataDir) -> anyhow::Result<()> {
    let cert_path = dir.config.resolve(&dir.path, &dir.config.tls.cert);
    let key_path = dir.config.resolve(&dir.path, &dir.config.tls.key);
    if let Some(parent) = cert_path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let names = vec![
        DEV_HOSTNAME.to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).context("cannot create a dev certificate")?;
    fs::write(&cert_path, certified.cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    let key_pem = Zeroizing::new(certified.signing_key.serialize_pem());
    let mut key_file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    std::io::Write::write_all(&mut key_file, key_pem.as_bytes())?;
    key_file.sync_all()?;
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))?;
    println!(
        "dev certificate: {} (self-signed for localhost)",
        cert_path.display()
    );
    Ok(())
}
