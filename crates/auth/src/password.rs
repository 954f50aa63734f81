//! Account passwords: argon2id hashing, verification, bcrypt import and rehash-on-login.
//!
//! Timing: every call to [`verify_password`] performs exactly one argon2id (or bcrypt) computation
//! and a constant-time comparison of the outputs, whether the password is right or wrong. An
//! unknown account (`stored == None`) or a corrupt hash is verified against [`DUMMY_HASH`], which
//! has the current parameters, so it costs the same as a known account with a current hash. Only
//! a *successful* check may cost more (one extra hash when the stored one is upgraded), and
//! success is something the client learns anyway. Known accounts whose hash is still bcrypt or
//! uses older argon2 parameters cost what their own hash costs until their next login upgrades it.

use std::sync::{Condvar, Mutex};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::AuthError;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
/// RFC 9106 §3.1 recommends a 128-bit salt.
const SALT_LEN: usize = 16;

/// A stored hash asking for more than this is treated as corrupt: argon2 would try to allocate
/// that much memory (an allocation failure aborts the whole process) or spin for ever.
const MAX_STORED_M_COST_KIB: u32 = 1 << 20; // 1 GiB
const MAX_STORED_T_COST: u32 = 64;

/// argon2's working memory (19 MiB per hash): a fixed set of buffers, reused. Allocating and
/// freeing it per login left every freed buffer on glibc's per-thread heaps: the server's memory
/// grew with each burst of concurrent logins and never shrank (measured: about 600 KiB of RSS
/// per idle IMAP connection after 1,000 logins). At most [`max_working_memories`] hashes run at
/// once; more wait for a buffer, which bounds both memory and CPU spent on logins.
static WORKING_MEMORY: Mutex<WorkingMemory> = Mutex::new(WorkingMemory {
    free: Vec::new(),
    allocated: 0,
});
static WORKING_MEMORY_FREED: Condvar = Condvar::new();

struct WorkingMemory {
    free: Vec<Vec<Block>>,
    allocated: usize,
}

/// One buffer per core: more concurrent hashes would only share the cores.
fn max_working_memories() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Verified instead of the real hash for unknown accounts and corrupt hashes, so that those cost
/// the same time as a real check. Same parameters as [`hash_password`]; its password is random
/// and unknown, and the result of checking it is ignored anyway.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c75uG3fpmlcpjpfQTXsFNQ$t2TdZk9j4MlfO+Th14oqypAvWn5quJErC9QY9Eoc2E4";

/// Outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. When `upgraded_hash` is set the caller should store it in place of
    /// the old hash (bcrypt import or weaker argon2 parameters).
    Valid { upgraded_hash: Option<String> },
    /// Wrong password, unknown account or unusable stored hash: deliberately indistinguishable.
    Invalid,
}

impl Verification {
    pub fn is_valid(&self) -> bool {
        matches!(self, Verification::Valid { .. })
    }
}

fn current_params() -> Result<Params, AuthError> {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Hashes `password` as an argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    aws_lc_rs::rand::fill(salt.as_mut()).map_err(|_| AuthError::Random)?;
    let params = current_params()?;
    let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        &params,
        password,
        salt.as_ref(),
        out.as_mut(),
    )
    .map_err(|e| AuthError::Hashing(e.to_string()))?;
    let salt =
        SaltString::encode_b64(salt.as_ref()).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let hash = Output::new(out.as_ref()).map_err(|e| AuthError::Hashing(e.to_string()))?;
    // The PHC string format (password-hash crate, "B64": base64 without padding).
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${hash}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str()
    ))
}

/// One argon2 computation in reused working memory (see [`WORKING_MEMORY`]).
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let blocks = params.block_count();
    let current = current_params().map_or(0, |p| p.block_count());
    // A stored hash asking for more memory than today's parameters is a one-off (it is
    // upgraded at this login): its buffer is not kept.
    let oversized = blocks > current;
    let mut memory = if oversized {
        Vec::new()
    } else {
        take_working_memory()
    };
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let result = argon2.hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        out,
        &mut memory[..blocks],
    );
    // The blocks hold password-derived state: cleared before anyone else uses them.
    memory
        .iter_mut()
        .for_each(|block| *block = Block::default());
    if !oversized {
        return_working_memory(memory);
    }
    result
}

/// A free buffer, a new one while fewer than the maximum exist, or else waits for one.
fn take_working_memory() -> Vec<Block> {
    let Ok(mut pool) = WORKING_MEMORY.lock() else {
        return Vec::new();
    };
    loop {
        if let Some(memory) = pool.free.pop() {
            return memory;
        }
        if pool.allocated < max_working_memories() {
            pool.allocated += 1;
            return Vec::new();
        }
        pool = match WORKING_MEMORY_FREED.wait(pool) {
            Ok(pool) => pool,
            Err(_) => return Vec::new(),
        };
    }
}

fn return_working_memory(memory: Vec<Block>) {
    if let Ok(mut pool) = WORKING_MEMORY.lock() {
        pool.free.push(memory);
        WORKING_MEMORY_FREED.notify_one();
    }
}

/// Checks `password` against a stored hash (argon2 PHC string or bcrypt `$2a$`/`$2b$`/`$2y$`).
/// `stored == None` means the account does not exist. See the module docs for timing.
pub fn verify_password(password: &str, stored: Option<&str>) -> Verification {
    let outcome = match stored {
        Some(hash) if is_bcrypt(hash) => verify_bcrypt(password, hash),
        Some(hash) => verify_argon2(password, hash),
        None => Outcome::Unusable,
    };
    match outcome {
        Outcome::Match { upgrade } => Verification::Valid {
            // A failed rehash must not turn a correct password into a refusal: keep the old hash.
            upgraded_hash: upgrade.then(|| hash_password(password).ok()).flatten(),
        },
        Outcome::Mismatch => Verification::Invalid,
        Outcome::Unusable => {
            burn_dummy(password);
            Verification::Invalid
        }
    }
}

/// [`hash_password`] on tokio's blocking pool: argon2id takes tens of milliseconds of CPU and
/// must not stall the async reactor.
pub async fn hash_password_async(password: Zeroizing<String>) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AuthError::Task)?
}

/// [`verify_password`] on tokio's blocking pool. A failed task counts as [`Verification::Invalid`].
pub async fn verify_password_async(
    password: Zeroizing<String>,
    stored: Option<String>,
) -> Verification {
    tokio::task::spawn_blocking(move || verify_password(&password, stored.as_deref()))
        .await
        .unwrap_or(Verification::Invalid)
}

enum Outcome {
    Match {
        upgrade: bool,
    },
    Mismatch,
    /// The stored hash could not be used, so no work was done yet.
    Unusable,
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

fn verify_bcrypt(password: &str, hash: &str) -> Outcome {
    // `verify` (not `non_truncating_verify`) because other hosts truncated at 72 bytes when they
    // created these hashes; the argon2id replacement then covers the whole password.
    match bcrypt::verify(password.as_bytes(), hash) {
        Ok(true) => Outcome::Match { upgrade: true },
        Ok(false) => Outcome::Mismatch,
        // The bcrypt crate rejects malformed hashes before doing any work.
        Err(_) => Outcome::Unusable,
    }
}

/// A stored argon2 hash that has been checked to be usable.
struct UsableHash<'a> {
    hash: PasswordHash<'a>,
    upgrade: bool,
}

fn parse_argon2(stored: &str) -> Option<UsableHash<'_>> {
    let hash = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash).ok()?;
    let salt_len = salt_len(&hash)?;
    hash.hash.as_ref()?;
    if params.m_cost() > MAX_STORED_M_COST_KIB || params.t_cost() > MAX_STORED_T_COST {
        return None;
    }
    let upgrade = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || params.m_cost() < M_COST_KIB
        || params.t_cost() < T_COST
        || params.output_len().unwrap_or(OUTPUT_LEN) < OUTPUT_LEN
        || salt_len < SALT_LEN;
    Some(UsableHash { hash, upgrade })
}

/// Decoded salt length, or None when the salt is missing or out of argon2's accepted range.
fn salt_len(hash: &PasswordHash<'_>) -> Option<usize> {
    let mut buf = [0u8; 64];
    let len = hash.salt?.decode_b64(&mut buf).ok()?.len();
    (len >= argon2::MIN_SALT_LEN).then_some(len)
}

fn verify_argon2(password: &str, stored: &str) -> Outcome {
    let Some(usable) = parse_argon2(stored) else {
        return Outcome::Unusable;
    };
    match compute_for(password, &usable.hash) {
        Some(true) => Outcome::Match {
            upgrade: usable.upgrade,
        },
        Some(false) => Outcome::Mismatch,
        None => Outcome::Unusable,
    }
}

/// Recomputes a stored hash for `password` with the stored algorithm, version, parameters and
/// salt; `Some(true)` when the outputs match (compared in constant time by `Output`).
fn compute_for(password: &str, hash: &PasswordHash<'_>) -> Option<bool> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let expected = hash.hash?;
    let params = Params::try_from(hash).ok()?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    compute(algorithm, version, &params, password, salt, &mut out).ok()?;
    Some(Output::new(&out).ok()? == expected)
}

/// Spends the same work as a real verification and discards the result.
fn burn_dummy(password: &str) {
    if let Ok(dummy) = PasswordHash::new(DUMMY_HASH) {
        let _ = compute_for(password, &dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_of(phc: &str) -> (String, Params) {
        let hash = PasswordHash::new(phc).expect("test hash parses");
        let params = Params::try_from(&hash).expect("test params parse");
        (hash.algorithm.to_string(), params)
    }

    #[test]
    fn hash_is_argon2id_with_owasp_params_and_verifies() {
        let hash = hash_password("correct horse").expect("hash");
        let (alg, params) = params_of(&hash);
        assert_eq!(alg, "argon2id");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
        assert_eq!(
            verify_password("correct horse", Some(&hash)),
            Verification::Valid {
                upgraded_hash: None
            }
        );
    }

    #[test]
    fn hashes_verify_with_the_reference_argon2_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password("interop").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interop", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"other", &parsed)
            .is_err());
    }

    #[test]
    fn working_memory_is_kept_for_the_next_hash_and_bounded() {
        let threads: Vec<_> = (0..8)
            .map(|i| std::thread::spawn(move || hash_password(&format!("pw{i}")).unwrap()))
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let pool = WORKING_MEMORY.lock().unwrap();
        assert!(pool.allocated >= 1 && pool.allocated <= max_working_memories());
        let blocks = current_params().unwrap().block_count();
        assert!(pool.free.iter().all(|memory| memory.len() == blocks));
    }

    #[test]
    fn salts_are_random() {
        let a = hash_password("same").expect("hash");
        let b = hash_password("same").expect("hash");
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_password_is_invalid() {
        let hash = hash_password("correct horse").expect("hash");
        assert_eq!(
            verify_password("battery staple", Some(&hash)),
            Verification::Invalid
        );
        assert_eq!(verify_password("", Some(&hash)), Verification::Invalid);
    }

    #[test]
    fn bcrypt_2b_cost_12_import_verifies_and_upgrades_to_argon2id() {
        let legacy = bcrypt::hash("hunter2", 12).expect("bcrypt hash");
        assert!(legacy.starts_with("$2b$12$"));
        let Verification::Valid {
            upgraded_hash: Some(upgraded),
        } = verify_password("hunter2", Some(&legacy))
        else {
            panic!("bcrypt import should verify and yield an upgraded hash");
        };
        assert_eq!(params_of(&upgraded).0, "argon2id");
        assert!(verify_password("hunter2", Some(&upgraded)).is_valid());
        assert_eq!(
            verify_password("hunter3", Some(&legacy)),
            Verification::Invalid
        );
    }

    #[test]
    fn bcrypt_2a_and_2y_prefixes_are_accepted() {
        let legacy = bcrypt::hash("pw", 4).expect("bcrypt hash");
        for prefix in ["$2a$", "$2y$"] {
            let variant = legacy.replacen("$2b$", prefix, 1);
            assert!(verify_password("pw", Some(&variant)).is_valid(), "{prefix}");
        }
    }

    #[test]
    fn unknown_account_is_invalid_even_for_the_dummy_password() {
        assert_eq!(verify_password("anything", None), Verification::Invalid);
        assert_eq!(verify_password("", None), Verification::Invalid);
    }

    #[test]
    fn unparseable_hashes_are_invalid() {
        for stored in [
            "",
            "plaintext",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$2b$12$short",
            "$1$md5crypt$abc",
        ] {
            assert_eq!(
                verify_password("plaintext", Some(stored)),
                Verification::Invalid,
                "{stored:?}"
            );
        }
    }

    #[test]
    fn stored_hash_demanding_absurd_memory_is_refused_not_allocated() {
        let huge = DUMMY_HASH.replace("m=19456", "m=4294967295");
        assert!(
            PasswordHash::new(&huge).is_ok(),
            "well-formed, only too costly"
        );
        assert!(parse_argon2(&huge).is_none());
        let slow = DUMMY_HASH.replace("t=2", "t=4294967295");
        assert!(parse_argon2(&slow).is_none());
        assert_eq!(verify_password("x", Some(&huge)), Verification::Invalid);
    }

    #[test]
    fn dummy_hash_uses_current_parameters() {
        let (alg, params) = params_of(DUMMY_HASH);
        let (cur_alg, cur) = params_of(&hash_password("x").expect("hash"));
        assert_eq!(alg, cur_alg);
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (cur.m_cost(), cur.t_cost(), cur.p_cost())
        );
        assert!(parse_argon2(DUMMY_HASH).is_some_and(|h| !h.upgrade));
    }

    fn hash_with(alg: Algorithm, m: u32, t: u32, password: &str) -> String {
        let params = Params::new(m, t, 1, Some(32)).expect("params");
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        let argon2 = Argon2::new(alg, Version::V0x13, params);
        argon2::password_hash::PasswordHasher::hash_password(&argon2, password.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    }

    #[test]
    fn weaker_argon2_params_are_upgraded() {
        for weak in [
            hash_with(Algorithm::Argon2id, 4096, 3, "pw"),
            hash_with(Algorithm::Argon2id, 19_456, 1, "pw"),
            hash_with(Algorithm::Argon2i, 19_456, 2, "pw"),
        ] {
            let Verification::Valid {
                upgraded_hash: Some(upgraded),
            } = verify_password("pw", Some(&weak))
            else {
                panic!("weak hash {weak} should verify and be upgraded");
            };
            assert!(parse_argon2(&upgraded).is_some_and(|h| !h.upgrade));
        }
    }

    #[test]
    fn stronger_argon2_params_are_kept() {
        let strong = hash_with(Algorithm::Argon2id, 32_768, 3, "pw");
        assert_eq!(
            verify_password("pw", Some(&strong)),
            Verification::Valid {
                upgraded_hash: None
            }
        );
    }

    #[tokio::test]
    async fn async_wrappers_hash_and_verify() {
        let hash = hash_password_async(Zeroizing::new("pw".to_owned()))
            .await
            .expect("hash");
        let ok = verify_password_async(Zeroizing::new("pw".to_owned()), Some(hash.clone())).await;
        assert!(ok.is_valid());
        let bad = verify_password_async(Zeroizing::new("nope".to_owned()), Some(hash)).await;
        assert_eq!(bad, Verification::Invalid);
    }
}
