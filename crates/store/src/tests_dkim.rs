//! The DKIM key table and the sealing of DKIM private keys.

use zeroize::Zeroizing;

use crate::tests::Fixture;
use crate::*;

fn new_key(selector: &str, algorithm: DkimAlgorithm, secret: &[u8]) -> NewDkimKey {
    NewDkimKey {
        selector: selector.to_string(),
        algorithm,
        public_key: format!("public {selector}").into_bytes(),
        private_key: Zeroizing::new(secret.to_vec()),
    }
}

fn pair(month: &str) -> Vec<NewDkimKey> {
    vec![
        new_key(
            &format!("pk{month}e"),
            DkimAlgorithm::Ed25519,
            b"ed25519 private key bytes",
        ),
        new_key(
            &format!("pk{month}r"),
            DkimAlgorithm::Rsa,
            b"rsa private key bytes",
        ),
    ]
}

async fn store_with_domain(fx: &Fixture, scope: KeyScope) -> (MailStore, Domain) {
    let store = fx.open(scope).await;
    let domain = store.add_domain("example.org").await.unwrap();
    (store, domain)
}

#[tokio::test]
async fn dkim_private_keys_are_sealed_and_open_after_reopening() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Account).await;
    let added = store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    assert_eq!(added.len(), 2);
    for key in &added {
        let needle: &[u8] = b"private key bytes";
        assert!(
            !key.sealed_private_key
                .windows(needle.len())
                .any(|w| w == needle),
            "the private key is stored in clear"
        );
    }
    drop(store);

    let store = fx.open(KeyScope::Account).await;
    let keys = store.dkim_keys(&domain).await.unwrap();
    assert_eq!(keys, added);
    let ed = keys
        .iter()
        .find(|k| k.algorithm == DkimAlgorithm::Ed25519)
        .unwrap();
    assert_eq!(ed.selector, "pk202611e");
    assert_eq!(ed.public_key, b"public pk202611e");
    assert_eq!(ed.retired, None);
    let opened = store.open_dkim_private_key(&domain, ed).await.unwrap();
    assert_eq!(opened.as_slice(), b"ed25519 private key bytes");
}

#[tokio::test]
async fn sealed_dkim_key_does_not_open_under_another_selector_domain_or_public_key() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Domain).await;
    let keys = store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    let (ed, rsa) = (&keys[0], &keys[1]);

    let mut moved = ed.clone();
    moved.selector = rsa.selector.clone();
    let err = store.open_dkim_private_key(&domain, &moved).await;
    assert!(matches!(err, Err(StoreError::Sealed(_))), "{err:?}");

    let mut swapped = ed.clone();
    swapped.public_key = rsa.public_key.clone();
    let err = store.open_dkim_private_key(&domain, &swapped).await;
    assert!(matches!(err, Err(StoreError::Sealed(_))), "{err:?}");

    let mut relabelled = ed.clone();
    relabelled.algorithm = DkimAlgorithm::Rsa;
    let err = store.open_dkim_private_key(&domain, &relabelled).await;
    assert!(matches!(err, Err(StoreError::Sealed(_))), "{err:?}");

    // Same id, other name: the domain name is bound, not just its row id.
    let renamed = Domain {
        id: domain.id,
        name: "other.org".into(),
    };
    let err = store.open_dkim_private_key(&renamed, ed).await;
    assert!(matches!(err, Err(StoreError::Sealed(_))), "{err:?}");

    let other = store.add_domain("other.org").await.unwrap();
    let err = store.open_dkim_private_key(&other, ed).await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
}

#[tokio::test]
async fn dkim_keys_use_the_domain_scope_or_the_deployment_scope() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Account).await;
    let keys = store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    assert_eq!(keys[0].key_id, format!("domain:{}:v1", domain.id));

    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Deployment).await;
    let keys = store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    assert_eq!(keys[0].key_id, "deployment:v1");
}

#[tokio::test]
async fn second_active_key_of_an_algorithm_or_taken_selector_conflicts() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Account).await;
    store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();

    // Another process creating the first keys at the same time loses.
    let err = store.add_dkim_keys(&domain, &pair("202612")).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    // All or nothing: the losing pair left no row behind.
    assert_eq!(store.dkim_keys(&domain).await.unwrap().len(), 2);

    // Selectors are never reused, even by a rotation.
    let err = store.stage_dkim_keys(&domain, &pair("202611")).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    // One staged rotation at a time.
    store
        .stage_dkim_keys(&domain, &pair("202612"))
        .await
        .unwrap();
    let err = store.stage_dkim_keys(&domain, &pair("202701")).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    let keys = store.dkim_keys(&domain).await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

fn selectors(keys: &[DkimKey], which: fn(&DkimKey) -> bool) -> Vec<&str> {
    keys.iter()
        .filter(|k| which(k))
        .map(|k| k.selector.as_str())
        .collect()
}

#[tokio::test]
async fn staged_keys_sign_only_once_activated_and_old_ones_stay_until_removed() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Account).await;
    store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    let err = store.activate_dkim_keys(&domain).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");

    store
        .stage_dkim_keys(&domain, &pair("202612"))
        .await
        .unwrap();
    let keys = store.dkim_keys(&domain).await.unwrap();
    assert_eq!(
        selectors(&keys, DkimKey::signing),
        ["pk202611e", "pk202611r"]
    );
    assert_eq!(
        selectors(&keys, DkimKey::pending),
        ["pk202612e", "pk202612r"]
    );

    store.activate_dkim_keys(&domain).await.unwrap();
    let keys = store.dkim_keys(&domain).await.unwrap();
    assert_eq!(
        selectors(&keys, DkimKey::signing),
        ["pk202612e", "pk202612r"]
    );
    assert!(selectors(&keys, DkimKey::pending).is_empty());
    let retired = selectors(&keys, |k| k.retired.is_some());
    assert_eq!(retired, ["pk202611e", "pk202611r"]);
    // A retired key still opens: it is the same sealed row, only no longer signing.
    let old = keys.iter().find(|k| k.selector == "pk202611r").unwrap();
    assert_eq!(
        store
            .open_dkim_private_key(&domain, old)
            .await
            .unwrap()
            .as_slice(),
        b"rsa private key bytes"
    );

    let err = store.remove_dkim_key(&domain, "pk202612e").await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    let err = store.remove_dkim_key(&domain, "nosuch").await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
    store.remove_dkim_key(&domain, "pk202611e").await.unwrap();
    // A staged key can be removed too: that cancels the rotation.
    store
        .stage_dkim_keys(&domain, &pair("202701"))
        .await
        .unwrap();
    store.remove_dkim_key(&domain, "pk202701e").await.unwrap();
    let keys = store.dkim_keys(&domain).await.unwrap();
    let left: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
    assert_eq!(left, ["pk202611r", "pk202612e", "pk202612r", "pk202701r"]);
}

#[tokio::test]
async fn removing_a_domain_removes_its_dkim_keys() {
    let fx = Fixture::new();
    let (store, domain) = store_with_domain(&fx, KeyScope::Account).await;
    store.add_dkim_keys(&domain, &pair("202611")).await.unwrap();
    store.meta().remove_domain("example.org").await.unwrap();
    let again = store.add_domain("example.org").await.unwrap();
    assert!(store.dkim_keys(&again).await.unwrap().is_empty());
}
