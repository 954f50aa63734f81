//! Master key (key-encryption key) and data keys.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::{random_bytes, OpenError};

/// Length of every key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Version byte in front of every sealed column value, so the format can evolve.
const SEALED_V1: u8 = 1;
const WRAP_CONTEXT: &[u8] = b"postkeep data key wrap v1\0";

/// Why a master key could not be loaded. Messages name the file but never show key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {path} is missing: run `postkeep init` or set POSTKEEP_MASTER_KEY")]
    Missing { path: String },
    #[error("cannot read master key file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} has mode {mode:o}: it must not be readable by group or others \
         (run `chmod 600 {path}`)"
    )]
    Permissions { path: String, mode: u32 },
    #[error("master key {origin} is malformed: expected 64 hexadecimal characters")]
    Malformed { origin: String },
    #[error("cannot create master key file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("data key {key_id} could not be unwrapped: wrong master key or corrupted key table")]
    Unwrap { key_id: String },
}

/// The key-encryption key. Wraps data keys; never touches data directly.
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_bytes(key.as_mut());
        Self { key }
    }

    /// Parses 64 hex characters (surrounding whitespace ignored). `origin` names where the text
    /// came from for the error message.
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed {
            origin: origin.to_string(),
        };
        let text = text.trim();
        if text.len() != KEY_LEN * 2 {
            return Err(malformed());
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text, key.as_mut()).map_err(|_| malformed())?;
        Ok(Self { key })
    }

    /// The key as 64 hex characters, for writing the key file or printing it once.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.as_ref()))
    }

    /// Loads the key file, refusing one that group or others could read.
    pub fn load_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let mut file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => KeyError::Missing {
                path: shown.clone(),
            },
            _ => KeyError::Unreadable {
                path: shown.clone(),
                source,
            },
        })?;
        let metadata = file.metadata().map_err(|source| KeyError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: shown, mode });
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text)
            .map_err(|source| KeyError::Unreadable {
                path: shown.clone(),
                source,
            })?;
        Self::from_hex(&text, &shown)
    }

    /// Writes this key to a new file with mode 0600 and fsyncs it. Fails if the file exists,
    /// so an existing key is never overwritten.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let create = |source| KeyError::Create {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(create)?;
        let mut text = self.to_hex();
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(create)?;
        file.sync_all().map_err(create)
    }

    /// A short public fingerprint (not the key): lets the store record which master key wrapped
    /// each data key, so starting with the wrong key gives a clear error.
    pub fn id(&self) -> String {
        let mac = hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref());
        let tag = hmac::sign(&mac, b"postkeep master key id v1");
        hex::encode(&tag.as_ref()[..8])
    }

    /// Wraps a data key for storage: AES-256-GCM under the master key, with the data key's id
    /// as associated data so wrapped keys cannot be swapped between ids.
    pub fn wrap(&self, data_key: &DataKey) -> Vec<u8> {
        seal_with(&self.key, &wrap_aad(&data_key.id), data_key.key.as_ref())
    }

    /// Unwraps a data key stored under `key_id`.
    pub fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let fail = || KeyError::Unwrap {
            key_id: key_id.to_string(),
        };
        let plain =
            Zeroizing::new(open_with(&self.key, &wrap_aad(key_id), wrapped).map_err(|_| fail())?);
        let key: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| fail())?;
        Ok(DataKey::from_parts(key_id.to_string(), Zeroizing::new(key)))
    }
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    [WRAP_CONTEXT, key_id.as_bytes()].concat()
}

/// An AES-256-GCM data key with its id (the id is part of every wrap and stored beside every
/// ciphertext it produced, so old keys stay usable after rotation).
pub struct DataKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate(id: impl Into<String>) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_bytes(key.as_mut());
        Self::from_parts(id.into(), key)
    }

    fn from_parts(id: String, key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self { id, key }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals a small value (a database column): `version || nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.key, aad, plaintext)
    }

    /// Opens what [`DataKey::seal`] produced with the same associated data.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        open_with(&self.key, aad, sealed)
    }

    /// Derives an independent 256-bit subkey for another purpose (HKDF-SHA256, RFC 5869), e.g.
    /// a keyed-hash key or per-file keys of the search index.
    pub fn derive(&self, purpose: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        derive_key(&self.key, purpose)
    }

    /// HMAC-SHA256 under a subkey for `purpose`: a blind index that reveals only equality
    /// (e.g. "these two messages carry the same Message-ID") to whoever reads the database.
    pub fn keyed_hash(&self, purpose: &[u8], data: &[u8]) -> [u8; 32] {
        let subkey = self.derive(purpose);
        let mac = hmac::Key::new(hmac::HMAC_SHA256, subkey.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&mac, data).as_ref());
        out
    }

    pub(crate) fn aead_key(&self) -> LessSafeKey {
        aead_key(&self.key)
    }
}

pub(crate) fn derive_key(key: &[u8; KEY_LEN], purpose: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"postkeep hkdf v1");
    let prk = salt.extract(key);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let info = [purpose];
    // expand/fill only fail for output lengths above 255 * 32 bytes; 32 is always valid.
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 expand of 32 bytes cannot fail");
    out
}

pub(crate) fn aead_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
    // aws-lc cleanses the expanded key schedule when the context is freed.
    let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256 key is 32 bytes");
    LessSafeKey::new(unbound)
}

fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce);
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aead_key(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[1 + NONCE_LEN..],
        )
        .expect("AES-GCM seal of an in-memory value cannot fail");
    out.extend_from_slice(tag.as_ref());
    out
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (&version, rest) = sealed.split_first().ok_or(OpenError)?;
    if version != SEALED_V1 || rest.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
    let mut buf = ciphertext.to_vec();
    let len = aead_key(key)
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| OpenError)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_same_key_and_context() {
        let key = DataKey::generate("acct:1:1");
        let sealed = key.seal(b"message:42:subject", b"hello");
        assert_eq!(key.open(b"message:42:subject", &sealed).unwrap(), b"hello");
        assert_eq!(key.open(b"message:43:subject", &sealed), Err(OpenError));
        let other = DataKey::generate("acct:2:1");
        assert_eq!(other.open(b"message:42:subject", &sealed), Err(OpenError));
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let key = DataKey::generate("k");
        assert_ne!(key.seal(b"", b"same"), key.seal(b"", b"same"));
    }

    #[test]
    fn tampered_or_truncated_ciphertext_is_rejected() {
        let key = DataKey::generate("k");
        let mut sealed = key.seal(b"ctx", b"some plaintext");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(key.open(b"ctx", &sealed), Err(OpenError));
        assert_eq!(key.open(b"ctx", &sealed[..5]), Err(OpenError));
        assert_eq!(key.open(b"ctx", &[]), Err(OpenError));
    }

    #[test]
    fn wrapped_data_key_unwraps_under_its_own_id_only() {
        let master = MasterKey::generate();
        let key = DataKey::generate("domain:example.org:1");
        let wrapped = master.wrap(&key);
        let back = master.unwrap("domain:example.org:1", &wrapped).unwrap();
        let sealed = key.seal(b"x", b"payload");
        assert_eq!(back.open(b"x", &sealed).unwrap(), b"payload");
        assert!(master.unwrap("domain:other.org:1", &wrapped).is_err());
        assert!(MasterKey::generate()
            .unwrap("domain:example.org:1", &wrapped)
            .is_err());
    }

    #[test]
    fn key_file_roundtrip_and_permission_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let master = MasterKey::generate();
        master.write_new_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(MasterKey::load_file(&path).unwrap().id(), master.id());
        assert!(master.write_new_file(&path).is_err(), "must not overwrite");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("master.key"));
    }

    #[test]
    fn missing_or_malformed_key_gives_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.key");
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(KeyError::Missing { .. })
        ));
        assert!(matches!(
            MasterKey::from_hex("abc", "env"),
            Err(KeyError::Malformed { .. })
        ));
        assert!(MasterKey::from_hex(&"zz".repeat(32), "env").is_err());
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let master = MasterKey::generate();
        let hex = master.to_hex();
        assert!(!format!("{master:?}").contains(hex.as_str()));
        let key = DataKey::generate("k1");
        assert_eq!(format!("{key:?}"), "DataKey(k1)");
    }

    #[test]
    fn derived_keys_differ_per_purpose_and_are_stable() {
        let key = DataKey::generate("k");
        assert_eq!(*key.derive(b"a"), *key.derive(b"a"));
        assert_ne!(*key.derive(b"a"), *key.derive(b"b"));
    }
}
