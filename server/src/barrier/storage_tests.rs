//! The barrier against real storage: init, unseal by shares, sealing and
//! opening values, rotation with rewrap, and a second node on the same
//! database.

use super::*;
use crate::storage::InitRecord;
use crate::storage::testing::TestDatabase;

async fn initialize(
    barrier: &Barrier,
    storage: &Storage,
    seal: InitSeal<'_>,
) -> Vec<Zeroizing<Vec<u8>>> {
    let mut prepared = barrier.prepare_init(seal).unwrap();
    let root = crate::auth::token::root_token_record(prepared.token_hash("root"), "acc".into(), 1);
    storage
        .initialize(&InitRecord {
            barrier: prepared.barrier.clone(),
            first_term: prepared.first_term.clone(),
            root_token: root,
            mounts: Vec::new(),
        })
        .await
        .unwrap();
    let shares = std::mem::take(&mut prepared.shares);
    barrier.finish_init(prepared);
    shares
}

fn name(path: &str, version: u64) -> RecordName {
    RecordName::new("kv/version")
        .part("mount")
        .part(path)
        .number(version)
}

#[tokio::test]
async fn shares_unseal_at_the_threshold_and_not_before() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Barrier::new(storage.clone());
    let shares = initialize(
        &barrier,
        &storage,
        InitSeal::Shamir {
            shares: 5,
            threshold: 3,
        },
    )
    .await;
    assert_eq!(shares.len(), 5);
    assert!(barrier.is_sealed(), "a shamir seal stays sealed after init");
    assert!(matches!(
        barrier.seal_value(&name("a", 1), b"x"),
        Err(BarrierError::Sealed)
    ));

    barrier
        .submit_unseal_share(shares[4].clone())
        .await
        .unwrap();
    barrier
        .submit_unseal_share(shares[4].clone())
        .await
        .unwrap();
    assert_eq!(
        barrier.unseal_progress().progress,
        1,
        "a repeated share does not count"
    );
    barrier
        .submit_unseal_share(shares[1].clone())
        .await
        .unwrap();
    assert!(barrier.is_sealed());
    assert_eq!(barrier.unseal_progress().progress, 2);
    assert!(!barrier.unseal_progress().nonce.is_empty());
    barrier
        .submit_unseal_share(shares[2].clone())
        .await
        .unwrap();
    assert!(!barrier.is_sealed());
    assert_eq!(barrier.unseal_progress().progress, 0);

    barrier.seal().await;
    assert!(barrier.is_sealed());
    assert!(matches!(barrier.token_hash("t"), Err(BarrierError::Sealed)));
}

#[tokio::test]
async fn wrong_or_malformed_shares_do_not_unseal_and_reset_progress() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Barrier::new(storage.clone());
    let shares = initialize(
        &barrier,
        &storage,
        InitSeal::Shamir {
            shares: 3,
            threshold: 2,
        },
    )
    .await;
    let other = shamir::split(&Key::generate().unwrap(), 3, 2).unwrap();

    barrier
        .submit_unseal_share(shares[0].clone())
        .await
        .unwrap();
    let err = barrier
        .submit_unseal_share(other[1].clone())
        .await
        .unwrap_err();
    assert!(matches!(err, BarrierError::Invalid(_)), "{err}");
    assert!(barrier.is_sealed());
    assert_eq!(
        barrier.unseal_progress().progress,
        0,
        "a failed attempt starts over"
    );

    let err = barrier
        .submit_unseal_share(Zeroizing::new(vec![1, 2, 3]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("33 bytes"), "{err}");
    assert_eq!(barrier.unseal_progress().progress, 0);

    barrier
        .submit_unseal_share(shares[2].clone())
        .await
        .unwrap();
    barrier
        .submit_unseal_share(shares[0].clone())
        .await
        .unwrap();
    assert!(!barrier.is_sealed());
}

#[tokio::test]
async fn values_open_only_under_their_own_name() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Barrier::new(storage.clone());
    let key = Key::generate().unwrap();
    initialize(&barrier, &storage, InitSeal::Static(&key)).await;
    assert!(!barrier.is_sealed(), "a static seal unseals at init");

    let a = barrier.seal_value(&name("a", 1), b"secret a").unwrap();
    let b = barrier.seal_value(&name("b", 1), b"secret b").unwrap();
    assert_eq!(
        &barrier.open_value(&name("a", 1), &a).await.unwrap()[..],
        b"secret a"
    );
    assert!(!a.ciphertext.windows(8).any(|w| w == b"secret a"));
    // Moved to another record, another version, or given another's data key.
    assert!(matches!(
        barrier.open_value(&name("b", 1), &a).await,
        Err(BarrierError::Decrypt)
    ));
    assert!(matches!(
        barrier.open_value(&name("a", 2), &a).await,
        Err(BarrierError::Decrypt)
    ));
    let swapped = SealedBlob {
        dek: b.dek.clone(),
        ciphertext: a.ciphertext.clone(),
    };
    assert!(matches!(
        barrier.open_value(&name("a", 1), &swapped).await,
        Err(BarrierError::Decrypt)
    ));
    let mut moved_dek = a.clone();
    moved_dek.dek.id = b.dek.id.clone();
    assert!(matches!(
        barrier.open_value(&name("a", 1), &moved_dek).await,
        Err(BarrierError::Decrypt)
    ));
}

#[tokio::test]
async fn a_restarted_server_unseals_with_the_same_key_only() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let key = Key::generate().unwrap();
    let first = Barrier::new(storage.clone());
    initialize(&first, &storage, InitSeal::Static(&key)).await;
    let sealed = first.seal_value(&name("a", 1), b"kept").unwrap();
    let token = first.token_hash("root").unwrap();
    drop(first);

    let restarted = Barrier::new(storage.clone());
    let err = restarted
        .unseal_with_key(&Key::generate().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, BarrierError::Decrypt));
    assert!(restarted.is_sealed());
    restarted.unseal_with_key(&key).await.unwrap();
    assert_eq!(
        &restarted.open_value(&name("a", 1), &sealed).await.unwrap()[..],
        b"kept"
    );
    assert_eq!(restarted.token_hash("root").unwrap(), token);
}

#[tokio::test]
async fn rotation_rewraps_data_keys_and_keeps_old_values_readable() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Barrier::new(storage.clone());
    let key = Key::generate().unwrap();
    initialize(&barrier, &storage, InitSeal::Static(&key)).await;
    let mut mount = crate::core::mounts::kv_v2_record("kv/", "").unwrap();
    mount.uuid = "mount".to_owned();
    storage.create_mount(&mount).await.unwrap();
    let mut blobs = Vec::new();
    for i in 1..=3u64 {
        let blob = barrier
            .seal_value(&name("k", i), format!("v{i}").as_bytes())
            .unwrap();
        storage
            .kv_write(
                &crate::storage::KvWrite {
                    mount: "mount",
                    path: "k",
                    cas: None,
                    expect_version: None,
                    now: 1,
                },
                {
                    let blob = blob.clone();
                    move |_| Ok::<_, ()>(blob.clone())
                },
            )
            .await
            .unwrap();
        blobs.push(blob);
    }
    assert_eq!(barrier.key_status().await.unwrap().term, 1);
    assert_eq!(barrier.rotate().await.unwrap(), 2);
    let status = barrier.key_status().await.unwrap();
    assert_eq!(
        (status.term, status.rewrap_pending, status.data_keys),
        (2, 3, 3)
    );
    let fresh = barrier.seal_value(&name("k", 9), b"new").unwrap();
    assert_eq!(fresh.dek.term, 2);

    let report = barrier.rewrap_pass(2).await.unwrap();
    assert_eq!(
        (report.rewrapped, report.unreadable),
        (3, 0),
        "three keys in batches of two"
    );
    assert_eq!(
        barrier.rewrap_pass(2).await.unwrap(),
        RewrapReport::default()
    );
    assert_eq!(barrier.key_status().await.unwrap().rewrap_pending, 0);
    for (i, _) in blobs.iter().enumerate() {
        let version = i as u64 + 1;
        let read = storage
            .kv_read("mount", "k", version)
            .await
            .unwrap()
            .unwrap();
        let value = read.version.value.unwrap();
        assert_eq!(value.dek.term, 2, "rewrapped to the new term");
        let plain = barrier
            .open_value(&name("k", version), &value)
            .await
            .unwrap();
        assert_eq!(&plain[..], format!("v{version}").as_bytes());
    }
    // The old wrapping (as in a backup) still opens: old terms are kept.
    assert_eq!(
        &barrier.open_value(&name("k", 1), &blobs[0]).await.unwrap()[..],
        b"v1"
    );
}

#[tokio::test]
async fn a_second_node_learns_a_new_term_when_it_meets_one() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let key = Key::generate().unwrap();
    let node_a = Barrier::new(storage.clone());
    initialize(&node_a, &storage, InitSeal::Static(&key)).await;
    let node_b = Barrier::new(storage.clone());
    node_b.unseal_with_key(&key).await.unwrap();

    node_a.rotate().await.unwrap();
    let blob = node_a.seal_value(&name("x", 1), b"from a").unwrap();
    assert_eq!(blob.dek.term, 2);
    assert_eq!(
        &node_b.open_value(&name("x", 1), &blob).await.unwrap()[..],
        b"from a"
    );
    assert_eq!(node_b.seal_value(&name("y", 1), b"b").unwrap().dek.term, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seal_racing_a_rotation_or_reload_stays_sealed() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Arc::new(Barrier::new(storage.clone()));
    let key = Key::generate().unwrap();
    initialize(&barrier, &storage, InitSeal::Static(&key)).await;
    for _ in 0..30 {
        if barrier.is_sealed() {
            barrier.unseal_with_key(&key).await.unwrap();
        }
        let (rotating, reloading) = (barrier.clone(), barrier.clone());
        let rotate = tokio::spawn(async move { rotating.rotate().await });
        let reload = tokio::spawn(async move { reloading.reload_keyring().await });
        tokio::task::yield_now().await;
        barrier.seal().await;
        // Each may have finished before the seal or found it sealed.
        let _ = rotate.await.unwrap();
        let _ = reload.await.unwrap();
        assert!(barrier.is_sealed(), "a rotation or reload undid the seal");
    }
}

#[tokio::test]
async fn a_data_key_that_does_not_open_is_skipped_not_retried_forever() {
    let db = TestDatabase::sqlite();
    let storage = db.open().await;
    let barrier = Barrier::new(storage.clone());
    let key = Key::generate().unwrap();
    initialize(&barrier, &storage, InitSeal::Static(&key)).await;
    let mut mount = crate::core::mounts::kv_v2_record("kv/", "").unwrap();
    mount.uuid = "mount".to_owned();
    storage.create_mount(&mount).await.unwrap();
    for (path, corrupt) in [("a", false), ("b", true), ("c", false), ("d", false)] {
        let mut blob = barrier.seal_value(&name(path, 1), b"v").unwrap();
        if corrupt {
            blob.dek.wrapped[20] ^= 1;
        }
        let write = crate::storage::KvWrite {
            mount: "mount",
            path,
            cas: None,
            expect_version: None,
            now: 1,
        };
        storage
            .kv_write(&write, move |_| Ok::<_, ()>(blob.clone()))
            .await
            .unwrap();
    }
    barrier.rotate().await.unwrap();
    let report = barrier.rewrap_pass(1).await.unwrap();
    assert_eq!(
        report,
        RewrapReport {
            rewrapped: 3,
            unreadable: 1
        }
    );
    let status = barrier.key_status().await.unwrap();
    assert_eq!(
        status.rewrap_pending, 1,
        "the bad key stays visible in key-status"
    );
    // The next pass is no slower for it: it finds only the bad key again.
    assert_eq!(
        barrier.rewrap_pass(1).await.unwrap(),
        RewrapReport {
            rewrapped: 0,
            unreadable: 1
        }
    );
}
