//! A login against the store: the one path every protocol (IMAP, POP3, submission, web) uses,
//! so throttling, timing and hash upgrades are the same everywhere.

use std::net::IpAddr;
use std::sync::Arc;

use postkeep_store::{Account, MailStore};
use zeroize::Zeroizing;

use crate::{AppPasswordKey, Throttle, Verification};

/// Key scope whose first key roots the app-password digests.
const AUTH_KEY_SCOPE: &str = "auth";

/// Why a login failed. Deliberately coarse: callers answer every variant the same way to the
/// client ("authentication failed"), so no reply reveals whether an account exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("authentication failed")]
    Invalid,
    #[error("too many failed logins; retry in {0:?}")]
    Throttled(std::time::Duration),
    #[error("authentication temporarily unavailable: {0}")]
    Unavailable(String),
}

/// The key app-password digests are computed with (derived from a wrapped data key, so it is
/// as protected as mail, and stable across data-key rotations).
pub async fn app_password_key(store: &MailStore) -> Result<AppPasswordKey, LoginError> {
    let root = store
        .keyring()
        .index_key(AUTH_KEY_SCOPE)
        .await
        .map_err(|e| LoginError::Unavailable(e.to_string()))?;
    Ok(AppPasswordKey::new(root.derive(b"app password digest v1")))
}

pub struct Authenticator {
    store: Arc<MailStore>,
    throttle: Throttle,
}

impl Authenticator {
    pub fn new(store: Arc<MailStore>, throttle: Throttle) -> Self {
        Self { store, throttle }
    }

    /// Checks `secret` as the account's password or one of its app passwords.
    pub async fn login(
        &self,
        address: &str,
        secret: Zeroizing<String>,
        ip: IpAddr,
    ) -> Result<Account, LoginError> {
        let address = address.trim().to_lowercase();
        self.throttle
            .check(&address, ip)
            .map_err(LoginError::Throttled)?;
        let account = self.store.find_account(&address).await.unwrap_or(None);
        match self.check(account.as_ref(), secret).await? {
            Some(account) => {
                self.throttle.record_success(&address, ip);
                Ok(account)
            }
            None => {
                self.throttle.record_failure(&address, ip);
                Err(LoginError::Invalid)
            }
        }
    }

    async fn check(
        &self,
        account: Option<&Account>,
        secret: Zeroizing<String>,
    ) -> Result<Option<Account>, LoginError> {
        // App passwords first: a keyed hash, cheap; a miss falls through to the password check,
        // which always runs one full argon2id verification (a dummy one for unknown accounts).
        if let Some(account) = account {
            if self.is_app_password(account, &secret).await? {
                return Ok(Some(account.clone()));
            }
        }
        let stored = account.and_then(|a| a.password_hash.clone());
        match crate::verify_password_async(secret, stored).await {
            Verification::Valid { upgraded_hash } => {
                let Some(account) = account else {
                    return Ok(None);
                };
                if let Some(hash) = upgraded_hash {
                    // Best effort: a failed upgrade must not fail a correct login.
                    if let Err(e) = self.store.meta().set_password_hash(account.id, &hash).await {
                        tracing::warn!(error = %e, "password hash upgrade failed");
                    }
                }
                Ok(Some(account.clone()))
            }
            Verification::Invalid => Ok(None),
        }
    }

    async fn is_app_password(&self, account: &Account, secret: &str) -> Result<bool, LoginError> {
        let stored = self
            .store
            .meta()
            .list_app_passwords(account.id)
            .await
            .map_err(|e| LoginError::Unavailable(e.to_string()))?;
        if stored.is_empty() {
            return Ok(false);
        }
        let key = app_password_key(&self.store).await?;
        Ok(stored.iter().any(|app| {
            <[u8; 32]>::try_from(app.digest.as_slice())
                .is_ok_and(|digest| key.verify(secret, &digest))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn store(dir: &std::path::Path) -> Arc<MailStore> {
        postkeep_store::testing::store_with_domain(dir, "example.org").await
    }

    fn secret(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_string())
    }

    #[tokio::test]
    async fn imported_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let bcrypt_hash = bcrypt::hash("migrated secret", 12).unwrap();
        assert!(bcrypt_hash.starts_with("$2b$12$"));
        store
            .create_account("old@example.org", Some(&bcrypt_hash))
            .await
            .unwrap();
        let auth = Authenticator::new(Arc::clone(&store), Throttle::default());
        assert!(matches!(
            auth.login("old@example.org", secret("wrong"), IP).await,
            Err(LoginError::Invalid)
        ));
        auth.login("OLD@example.org", secret("migrated secret"), IP)
            .await
            .unwrap();
        let upgraded = store
            .find_account("old@example.org")
            .await
            .unwrap()
            .unwrap();
        let hash = upgraded.password_hash.unwrap();
        assert!(hash.starts_with("$argon2id$"), "not upgraded: {hash}");
        auth.login("old@example.org", secret("migrated secret"), IP)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn app_passwords_log_in_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let hash = crate::hash_password("main password").unwrap();
        let account = store
            .create_account("a@example.org", Some(&hash))
            .await
            .unwrap();
        let app = crate::generate_app_password().unwrap();
        let digest = app_password_key(&store).await.unwrap().digest(&app);
        store
            .meta()
            .add_app_password(account.id, "phone", &digest)
            .await
            .unwrap();
        let auth = Authenticator::new(Arc::clone(&store), Throttle::default());
        auth.login("a@example.org", app.clone(), IP).await.unwrap();
        auth.login("a@example.org", secret("main password"), IP)
            .await
            .unwrap();
        store
            .meta()
            .revoke_app_password(account.id, "phone")
            .await
            .unwrap();
        assert!(auth.login("a@example.org", app, IP).await.is_err());
    }

    #[tokio::test]
    async fn unknown_accounts_fail_like_wrong_passwords_and_guessing_is_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let hash = crate::hash_password("right").unwrap();
        store
            .create_account("a@example.org", Some(&hash))
            .await
            .unwrap();
        let auth = Authenticator::new(Arc::clone(&store), Throttle::default());
        assert!(matches!(
            auth.login("nobody@example.org", secret("x"), IP).await,
            Err(LoginError::Invalid)
        ));
        let mut throttled = false;
        for _ in 0..8 {
            if let Err(LoginError::Throttled(_)) =
                auth.login("a@example.org", secret("guess"), IP).await
            {
                throttled = true;
                break;
            }
        }
        assert!(throttled, "repeated failures must be throttled");
        // While throttled even the right password is refused without being checked.
        assert!(matches!(
            auth.login("a@example.org", secret("right"), IP).await,
            Err(LoginError::Throttled(_))
        ));
    }
}
