//! Data keys per scope, stored wrapped by the master key, unwrapped on demand and cached.
//!
//! Scopes: `deployment`, `domain:<id>` or `account:<id>` (chosen by configuration). Each scope
//! has versions `v1, v2, ...`; new data is sealed with the newest, and every ciphertext records
//! the id of the key that sealed it, so rotation never re-encrypts and old data stays readable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use postkeep_crypto::{DataKey, KeyError, MasterKey};

use crate::meta::MetadataStore;
use crate::model::{AccountId, DomainId, WrappedKey};
use crate::StoreError;

/// Which data key protects an account's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    Deployment,
    Domain,
    Account,
}

impl KeyScope {
    pub fn scope_for(self, domain_id: DomainId, account_id: AccountId) -> String {
        match self {
            KeyScope::Deployment => "deployment".to_string(),
            KeyScope::Domain => format!("domain:{domain_id}"),
            KeyScope::Account => format!("account:{account_id}"),
        }
    }
}

/// Loads the master key from wherever it lives (file or environment). Called again when the
/// database says the master key was rotated by another process.
pub type MasterLoader = Arc<dyn Fn() -> Result<MasterKey, KeyError> + Send + Sync>;

const MASTER_ID_SETTING: &str = "master_key_id";
/// How long a process trusts its idea of a scope's newest key; a rotation done by the CLI
/// reaches a running server within this time.
const CURRENT_KEY_TTL: Duration = Duration::from_secs(30);

pub struct Keyring {
    meta: Arc<dyn MetadataStore>,
    loader: MasterLoader,
    master: Mutex<Arc<MasterKey>>,
    unwrapped: RwLock<HashMap<String, Arc<DataKey>>>,
    current: RwLock<HashMap<String, (String, Instant)>>,
}

impl Keyring {
    /// Loads the master key and checks it is the one this data directory was set up with.
    pub async fn open(
        meta: Arc<dyn MetadataStore>,
        loader: MasterLoader,
    ) -> Result<Self, StoreError> {
        let master = loader()?;
        match meta.get_setting(MASTER_ID_SETTING).await? {
            None => meta.set_setting(MASTER_ID_SETTING, &master.id()).await?,
            Some(expected) if expected == master.id() => {}
            Some(expected) => {
                return Err(StoreError::Invalid(format!(
                "the master key (id {}) is not the one this data directory uses (id {expected})",
                master.id()
            )))
            }
        }
        Ok(Self {
            meta,
            loader,
            master: Mutex::new(Arc::new(master)),
            unwrapped: RwLock::new(HashMap::new()),
            current: RwLock::new(HashMap::new()),
        })
    }

    fn master(&self) -> Arc<MasterKey> {
        Arc::clone(&self.master.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The master key the database currently expects, reloading it if another process
    /// rotated it since we started.
    async fn fresh_master(&self) -> Result<Arc<MasterKey>, StoreError> {
        let master = self.master();
        let expected = self.meta.get_setting(MASTER_ID_SETTING).await?;
        if expected.as_deref() == Some(master.id().as_str()) {
            return Ok(master);
        }
        let reloaded = Arc::new((self.loader)()?);
        if expected.as_deref() != Some(reloaded.id().as_str()) {
            return Err(StoreError::Invalid(
                "the master key was rotated and the new one is not available to this process"
                    .into(),
            ));
        }
        *self.master.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&reloaded);
        Ok(reloaded)
    }

    /// A data key by id (as recorded beside a ciphertext).
    pub async fn key(&self, id: &str) -> Result<Arc<DataKey>, StoreError> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        let stored = self
            .meta
            .find_key(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("data key {id}")))?;
        self.unwrap_stored(&stored).await
    }

    fn cached(&self, id: &str) -> Option<Arc<DataKey>> {
        self.unwrapped
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    async fn unwrap_stored(&self, stored: &WrappedKey) -> Result<Arc<DataKey>, StoreError> {
        let mut master = self.master();
        if master.id() != stored.master_id {
            master = self.fresh_master().await?;
        }
        let key = Arc::new(master.unwrap(&stored.id, &stored.wrapped)?);
        self.unwrapped
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stored.id.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// The key new data of `scope` is sealed with; created (v1) on first use.
    pub async fn current(&self, scope: &str) -> Result<Arc<DataKey>, StoreError> {
        let known = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .filter(|(_, at)| at.elapsed() < CURRENT_KEY_TTL)
            .map(|(id, _)| id.clone());
        if let Some(id) = known {
            return self.key(&id).await;
        }
        let key = match self.meta.current_key(scope).await? {
            Some(stored) => match self.cached(&stored.id) {
                Some(key) => key,
                None => self.unwrap_stored(&stored).await?,
            },
            None => self.create(scope, 1).await?,
        };
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), (key.id().to_string(), Instant::now()));
        Ok(key)
    }

    /// The scope's first key: the root of blind indexes, which must stay stable across
    /// rotations (a new key would make old and new Message-ID hashes unequal).
    pub async fn index_key(&self, scope: &str) -> Result<Arc<DataKey>, StoreError> {
        self.current(scope).await?;
        self.key(&key_id(scope, 1)).await
    }

    async fn create(&self, scope: &str, version: i64) -> Result<Arc<DataKey>, StoreError> {
        let master = self.fresh_master().await?;
        let key = DataKey::generate(key_id(scope, version));
        let stored = WrappedKey {
            id: key.id().to_string(),
            scope: scope.to_string(),
            version,
            wrapped: master.wrap(&key),
            master_id: master.id(),
            created: chrono::Utc::now().timestamp(),
        };
        match self.meta.insert_key(&stored).await {
            Ok(()) => {}
            // Another process or task created it first: use theirs.
            Err(StoreError::Conflict(_)) => return self.key(&stored.id).await,
            Err(e) => return Err(e),
        }
        let key = Arc::new(key);
        self.unwrapped
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stored.id, Arc::clone(&key));
        Ok(key)
    }

    /// Gives `scope` a new data key for new data; older keys stay readable.
    pub async fn rotate(&self, scope: &str) -> Result<String, StoreError> {
        let version = match self.meta.current_key(scope).await? {
            Some(stored) => stored.version + 1,
            None => 1,
        };
        let key = self.create(scope, version).await?;
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope);
        Ok(key.id().to_string())
    }

    /// Every scope that has keys.
    pub async fn scopes(&self) -> Result<Vec<String>, StoreError> {
        let mut scopes: Vec<String> = self
            .meta
            .list_keys()
            .await?
            .into_iter()
            .map(|k| k.scope)
            .collect();
        scopes.dedup();
        Ok(scopes)
    }

    /// Re-wraps every data key under `new_master` in one transaction. Blobs and sealed
    /// columns are untouched: they are sealed by data keys, which do not change.
    pub async fn rotate_master(&self, new_master: &MasterKey) -> Result<usize, StoreError> {
        let master = self.fresh_master().await?;
        let mut rewrapped = Vec::new();
        for mut stored in self.meta.list_keys().await? {
            let key = master.unwrap(&stored.id, &stored.wrapped)?;
            stored.wrapped = new_master.wrap(&key);
            stored.master_id = new_master.id();
            rewrapped.push(stored);
        }
        self.meta.rewrap_keys(&rewrapped, &new_master.id()).await?;
        *self.master.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(MasterKey::from_hex(
            &new_master.to_hex(),
            "rotated master key",
        )?);
        Ok(rewrapped.len())
    }
}

fn key_id(scope: &str, version: i64) -> String {
    format!("{scope}:v{version}")
}
