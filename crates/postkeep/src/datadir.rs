//! A data directory: its config file, master key and store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use postkeep_config::{Config, CONFIG_FILE_NAME};
use postkeep_crypto::MasterKey;
use postkeep_store::{KeyScope, MailStore, MasterLoader};

/// Environment variable that supplies the master key instead of the key file.
pub const MASTER_KEY_ENV: &str = "POSTKEEP_MASTER_KEY";

pub struct DataDir {
    pub path: PathBuf,
    pub config: Config,
}

impl DataDir {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config_path = path.join(CONFIG_FILE_NAME);
        if !config_path.exists() {
            anyhow::bail!(
                "{} not found: create the data directory with `postkeep init --data {}`",
                config_path.display(),
                path.display()
            );
        }
        let config = Config::load(&config_path)?;
        Ok(Self {
            path: path.to_path_buf(),
            config,
        })
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.config
            .resolve(&self.path, &self.config.encryption.master_key_file)
    }

    /// Where a master key rotation stages the new key until the database has switched.
    pub fn pending_master_key_path(&self) -> PathBuf {
        let mut name = self.master_key_path().into_os_string();
        name.push(".new");
        PathBuf::from(name)
    }

    pub fn master_from_env() -> bool {
        std::env::var_os(MASTER_KEY_ENV).is_some()
    }

    /// The environment variable wins over the file, so a key can be kept off the disk.
    pub fn master_loader(&self) -> MasterLoader {
        let path = self.master_key_path();
        Arc::new(move || match std::env::var(MASTER_KEY_ENV) {
            Ok(hex) => MasterKey::from_hex(&hex, MASTER_KEY_ENV),
            Err(_) => MasterKey::load_file(&path),
        })
    }

    fn key_scope(&self) -> KeyScope {
        match self.config.encryption.key_scope {
            postkeep_config::KeyScope::Deployment => KeyScope::Deployment,
            postkeep_config::KeyScope::Domain => KeyScope::Domain,
            postkeep_config::KeyScope::Account => KeyScope::Account,
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<MailStore> {
        self.finish_interrupted_rotation().await?;
        let store = MailStore::open_embedded(&self.path, self.key_scope(), self.master_loader())
            .await
            .with_context(|| format!("cannot open the store in {}", self.path.display()))?;
        Ok(store)
    }

    /// A `keys rotate-master` killed between committing the re-wrapped keys and renaming the
    /// new key file leaves `master.key.new`: finish (or undo) the rotation so the directory
    /// always opens with the key its database expects.
    async fn finish_interrupted_rotation(&self) -> anyhow::Result<()> {
        let pending = self.pending_master_key_path();
        if Self::master_from_env() || !pending.exists() {
            return Ok(());
        }
        let staged = pending.clone();
        let loader: MasterLoader = Arc::new(move || MasterKey::load_file(&staged));
        let switched = MailStore::open_embedded(&self.path, self.key_scope(), loader)
            .await
            .is_ok();
        if switched {
            std::fs::rename(&pending, self.master_key_path())
                .context("cannot finish the interrupted master key rotation")?;
            sync_parent(&self.master_key_path())?;
            eprintln!("postkeep: finished an interrupted master key rotation");
        } else {
            std::fs::remove_file(&pending).context("cannot remove the unused staged master key")?;
        }
        Ok(())
    }
}

/// fsyncs the directory holding `path`, so a rename or create in it survives a crash.
pub fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync directory {}", parent.display()))
}
