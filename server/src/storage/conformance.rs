//! The storage conformance suite: what every [`Storage`] implementation
//! must do, run against SQLite always and PostgreSQL when configured.
//!
//! Values here are opaque bytes: storage never sees plaintext, so the
//! suite needs no barrier.

#![allow(clippy::unwrap_used)] // test support: a failed step should fail the test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

const MOUNT: &str = "11111111-1111-1111-1111-111111111111";

/// Runs a test body on SQLite and, when configured, on PostgreSQL.
#[macro_export]
#[doc(hidden)]
macro_rules! storage_conformance_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::storage::testing::TestDatabase::sqlite();
                    let storage = db.open().await;
                    $crate::storage::conformance::prepare(&storage).await;
                    $crate::storage::conformance::$name(&storage).await;
                    storage.close().await;
                    db.remove().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = $crate::storage::testing::TestDatabase::postgres().await else {
                        return;
                    };
                    let storage = db.open().await;
                    $crate::storage::conformance::prepare(&storage).await;
                    $crate::storage::conformance::$name(&storage).await;
                    storage.close().await;
                    db.remove().await;
                }
            )*
        }
    };
}

/// The KV mount every check writes to.
fn test_mount() -> MountRecord {
    let mut m = crate::core::mounts::kv_v2_record("kv/", "").unwrap();
    m.uuid = MOUNT.to_owned();
    m
}

/// Run before each check: KV writes need their mount to exist.
pub async fn prepare(s: &Storage) {
    s.create_mount(&test_mount()).await.unwrap();
}

fn blob(tag: &str) -> SealedBlob {
    let mut id = vec![0u8; 16];
    crate::barrier::fill_random(&mut id).unwrap();
    SealedBlob {
        dek: DataKeyRecord {
            id,
            term: 1,
            wrapped: format!("wrapped:{tag}").into_bytes(),
        },
        ciphertext: format!("sealed:{tag}").into_bytes(),
    }
}

fn write(path: &str, cas: Option<u64>, now: UnixNanos) -> KvWrite<'_> {
    KvWrite {
        mount: MOUNT,
        path,
        cas,
        expect_version: None,
        now,
    }
}

/// Writes one version whose ciphertext names its version; panics unless written.
async fn put(s: &Storage, path: &str, cas: Option<u64>) -> u64 {
    let owned = path.to_owned();
    let outcome = s
        .kv_write(&write(path, cas, 1_000), move |v| {
            Ok::<_, ()>(blob(&format!("{owned}@{v}")))
        })
        .await
        .unwrap();
    match outcome {
        KvWriteOutcome::Written { version, .. } => version,
        _ => panic!("write of {path} was refused"),
    }
}

async fn total_data_keys(s: &Storage) -> u64 {
    s.data_key_counts(1).await.unwrap().total
}

fn init_record() -> InitRecord {
    InitRecord {
        barrier: BarrierRecord {
            seal_type: "shamir".into(),
            secret_shares: 5,
            secret_threshold: 3,
            sealed_root_key: b"root".to_vec(),
            sealed_token_key: b"token".to_vec(),
            cluster_id: "cid".into(),
            cluster_name: "cname".into(),
            initialized_at: 42,
        },
        first_term: KeyTermRecord {
            term: 1,
            sealed_key: b"kek1".to_vec(),
            installed_at: 42,
        },
        root_token: crate::auth::token::root_token_record(b"hash".to_vec(), "acc".into(), 42),
        mounts: vec![crate::core::mounts::kv_v2_record("secret/", "kv").unwrap()],
    }
}

pub async fn initializes_exactly_once(s: &Storage) {
    assert!(s.barrier_record().await.unwrap().is_none());
    s.initialize(&init_record()).await.unwrap();
    let stored = s.barrier_record().await.unwrap().unwrap();
    assert_eq!(stored.secret_threshold, 3);
    assert_eq!(stored.sealed_root_key, b"root");
    assert!(matches!(
        s.initialize(&init_record()).await,
        Err(StorageError::Conflict(_))
    ));
    let terms = s.key_terms().await.unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].sealed_key, b"kek1");
    let token = s.token(b"hash").await.unwrap().unwrap();
    assert_eq!(token.policies, vec!["root"]);
    assert_eq!(token.expire_at, None);
    assert!(s.token(b"other").await.unwrap().is_none());
    assert_eq!(
        s.mounts().await.unwrap().len(),
        2,
        "secret/ and the test mount"
    );
}

pub async fn key_terms_are_unique_and_ordered(s: &Storage) {
    s.initialize(&init_record()).await.unwrap();
    let t2 = KeyTermRecord {
        term: 2,
        sealed_key: b"kek2".to_vec(),
        installed_at: 50,
    };
    s.add_key_term(&t2).await.unwrap();
    assert!(matches!(
        s.add_key_term(&t2).await,
        Err(StorageError::Conflict(_))
    ));
    let terms: Vec<u32> = s
        .key_terms()
        .await
        .unwrap()
        .iter()
        .map(|t| t.term)
        .collect();
    assert_eq!(terms, vec![1, 2]);
}

pub async fn rewrap_is_conditional_on_the_old_term(s: &Storage) {
    put(s, "a", None).await;
    put(s, "b", None).await;
    let stale = s.data_keys_below_term(2, &[], 10).await.unwrap();
    assert_eq!(stale.len(), 2);
    let mut first = stale[0].clone();
    first.term = 2;
    first.wrapped = b"rewrapped".to_vec();
    assert_eq!(s.rewrap_data_keys(&[(first.clone(), 1)]).await.unwrap(), 1);
    // A second rewrap from term 1 finds it already moved.
    assert_eq!(s.rewrap_data_keys(&[(first, 1)]).await.unwrap(), 0);
    let counts = s.data_key_counts(2).await.unwrap();
    assert_eq!((counts.total, counts.on_term, counts.below_term), (2, 1, 1));
    assert_eq!(s.data_keys_below_term(2, &[], 10).await.unwrap().len(), 1);
}

pub async fn mounts_are_unique_and_deletion_removes_their_data(s: &Storage) {
    let mut same_path = crate::core::mounts::kv_v2_record("kv/", "").unwrap();
    same_path.accessor = "other".into();
    assert!(matches!(
        s.create_mount(&same_path).await,
        Err(StorageError::Conflict(_))
    ));
    put(s, "x", None).await;
    let meta = KvMetadataUpdate {
        custom_metadata: Some(Some(blob("custom"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "x", &meta, 5).await.unwrap();
    s.set_kv_config(
        MOUNT,
        &KvConfigRecord {
            max_versions: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(total_data_keys(s).await, 2);
    s.delete_mount(MOUNT).await.unwrap();
    assert!(s.mounts().await.unwrap().is_empty());
    assert!(s.kv_read(MOUNT, "x", 0).await.unwrap().is_none());
    assert!(s.kv_config(MOUNT).await.unwrap().is_none());
    assert_eq!(total_data_keys(s).await, 0);
    // A write routed to the mount before it went is refused, not orphaned.
    let late = s
        .kv_write(&write("x", None, 1), |_| Ok::<_, ()>(blob("late")))
        .await;
    assert!(matches!(late, Err(StorageError::MountGone)));
    let meta = KvMetadataUpdate {
        max_versions: Some(3),
        ..KvMetadataUpdate::default()
    };
    let late = s.kv_update_metadata(MOUNT, "x", &meta, 1).await;
    assert!(matches!(late, Err(StorageError::MountGone)));
    assert_eq!(total_data_keys(s).await, 0);
    assert!(s.kv_metadata(MOUNT, "x").await.unwrap().is_none());
}

pub async fn tokens_round_trip(s: &Storage) {
    let mut t = crate::auth::token::root_token_record(vec![1, 2, 3], "accessor1".into(), 7);
    t.policies = vec!["default".into(), "dev".into()];
    t.expire_at = Some(99);
    t.meta = r#"{"role":"x"}"#.into();
    s.create_token(&t).await.unwrap();
    assert_eq!(s.token(&[1, 2, 3]).await.unwrap().unwrap(), t);
    let mut dup = t.clone();
    dup.hash = vec![9];
    assert!(matches!(
        s.create_token(&dup).await,
        Err(StorageError::Conflict(_))
    ));
}

pub async fn versions_count_up_and_read_back(s: &Storage) {
    assert_eq!(put(s, "app/db", None).await, 1);
    assert_eq!(put(s, "app/db", None).await, 2);
    let latest = s.kv_read(MOUNT, "app/db", 0).await.unwrap().unwrap();
    assert_eq!(latest.current_version, 2);
    assert_eq!(latest.version.version, 2);
    assert_eq!(latest.version.value.unwrap().ciphertext, b"sealed:app/db@2");
    let first = s.kv_read(MOUNT, "app/db", 1).await.unwrap().unwrap();
    assert_eq!(first.version.value.unwrap().ciphertext, b"sealed:app/db@1");
    assert!(s.kv_read(MOUNT, "app/db", 3).await.unwrap().is_none());
    assert!(s.kv_read(MOUNT, "missing", 0).await.unwrap().is_none());
    assert!(
        s.kv_read("other-mount", "app/db", 0)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn check_and_set_is_enforced(s: &Storage) {
    assert_eq!(put(s, "k", Some(0)).await, 1);
    let mismatch = s
        .kv_write(&write("k", Some(0), 1), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    assert!(matches!(mismatch, KvWriteOutcome::CasMismatch));
    assert_eq!(put(s, "k", Some(1)).await, 2);
    let stale = s
        .kv_write(&write("k", Some(1), 1), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    assert!(matches!(stale, KvWriteOutcome::CasMismatch));
    // A refused first write leaves no key behind.
    let refused = s
        .kv_write(&write("new", Some(3), 1), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    assert!(matches!(refused, KvWriteOutcome::CasMismatch));
    assert!(s.kv_metadata(MOUNT, "new").await.unwrap().is_none());
    assert_eq!(total_data_keys(s).await, 2);
}

pub async fn cas_can_be_required_by_mount_or_key(s: &Storage) {
    s.set_kv_config(
        MOUNT,
        &KvConfigRecord {
            cas_required: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let required = s
        .kv_write(&write("k", None, 1), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    assert!(matches!(required, KvWriteOutcome::CasRequired));
    assert_eq!(put(s, "k", Some(0)).await, 1);
    s.set_kv_config(MOUNT, &KvConfigRecord::default())
        .await
        .unwrap();
    assert_eq!(put(s, "k", None).await, 2);
    let update = KvMetadataUpdate {
        cas_required: Some(true),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 2).await.unwrap();
    let required = s
        .kv_write(&write("k", None, 1), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    assert!(matches!(required, KvWriteOutcome::CasRequired));
}

pub async fn expected_version_detects_a_race(s: &Storage) {
    put(s, "k", None).await;
    put(s, "k", None).await;
    let w = KvWrite {
        expect_version: Some(1),
        ..write("k", None, 1)
    };
    let raced = s.kv_write(&w, |_| Ok::<_, ()>(blob("x"))).await.unwrap();
    assert!(matches!(raced, KvWriteOutcome::Raced));
    let w = KvWrite {
        expect_version: Some(2),
        ..write("k", None, 1)
    };
    let ok = s.kv_write(&w, |_| Ok::<_, ()>(blob("x"))).await.unwrap();
    assert!(matches!(ok, KvWriteOutcome::Written { version: 3, .. }));
}

pub async fn a_failed_seal_writes_nothing(s: &Storage) {
    let failed = s
        .kv_write(&write("k", None, 1), |_| Err::<SealedBlob, _>("no keys"))
        .await
        .unwrap();
    assert!(matches!(failed, KvWriteOutcome::SealFailed("no keys")));
    assert!(s.kv_metadata(MOUNT, "k").await.unwrap().is_none());
    assert_eq!(total_data_keys(s).await, 0);
}

pub async fn old_versions_are_pruned_with_their_keys(s: &Storage) {
    s.set_kv_config(
        MOUNT,
        &KvConfigRecord {
            max_versions: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..5 {
        put(s, "k", None).await;
    }
    let meta = s.kv_metadata(MOUNT, "k").await.unwrap().unwrap();
    let versions: Vec<u64> = meta.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![3, 4, 5]);
    assert_eq!((meta.current_version, meta.oldest_version), (5, 3));
    assert_eq!(total_data_keys(s).await, 3);
    // The key's own setting wins when larger (Vault keeps max(meta, mount)).
    let update = KvMetadataUpdate {
        max_versions: Some(4),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 2).await.unwrap();
    for _ in 0..3 {
        put(s, "k", None).await;
    }
    let meta = s.kv_metadata(MOUNT, "k").await.unwrap().unwrap();
    assert_eq!(meta.versions.len(), 4);
    assert_eq!(meta.oldest_version, 5);
}

pub async fn ten_versions_are_kept_by_default(s: &Storage) {
    for _ in 0..12 {
        put(s, "k", None).await;
    }
    let meta = s.kv_metadata(MOUNT, "k").await.unwrap().unwrap();
    assert_eq!(meta.versions.len(), DEFAULT_MAX_VERSIONS as usize);
    assert_eq!(meta.oldest_version, 3);
}

pub async fn delete_version_after_schedules_deletion(s: &Storage) {
    s.set_kv_config(
        MOUNT,
        &KvConfigRecord {
            delete_version_after: 60,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let outcome = s
        .kv_write(&write("k", None, 1_000), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    let KvWriteOutcome::Written { deletion_time, .. } = outcome else {
        panic!("not written")
    };
    assert_eq!(deletion_time, Some(1_000 + 60_000_000_000));
    let update = KvMetadataUpdate {
        delete_version_after: Some(5),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 2).await.unwrap();
    let outcome = s
        .kv_write(&write("k", None, 1_000), |_| Ok::<_, ()>(blob("x")))
        .await
        .unwrap();
    let KvWriteOutcome::Written { deletion_time, .. } = outcome else {
        panic!("not written")
    };
    assert_eq!(deletion_time, Some(1_000 + 5_000_000_000));
}

pub async fn soft_delete_undelete_and_destroy(s: &Storage) {
    for _ in 0..3 {
        put(s, "k", None).await;
    }
    s.kv_delete_versions(MOUNT, "k", KvVersions::Latest, 500)
        .await
        .unwrap();
    let v3 = s.kv_read(MOUNT, "k", 3).await.unwrap().unwrap().version;
    assert_eq!(v3.deletion_time, Some(500));
    // Deleting again keeps the first deletion time.
    s.kv_delete_versions(MOUNT, "k", KvVersions::Latest, 900)
        .await
        .unwrap();
    assert_eq!(
        s.kv_read(MOUNT, "k", 3)
            .await
            .unwrap()
            .unwrap()
            .version
            .deletion_time,
        Some(500)
    );
    s.kv_delete_versions(MOUNT, "k", KvVersions::These(&[1]), 600)
        .await
        .unwrap();
    s.kv_undelete_versions(MOUNT, "k", &[1, 3]).await.unwrap();
    assert_eq!(
        s.kv_read(MOUNT, "k", 1)
            .await
            .unwrap()
            .unwrap()
            .version
            .deletion_time,
        None
    );
    assert_eq!(
        s.kv_read(MOUNT, "k", 3)
            .await
            .unwrap()
            .unwrap()
            .version
            .deletion_time,
        None
    );
    assert_eq!(total_data_keys(s).await, 3);
    s.kv_destroy_versions(MOUNT, "k", &[2]).await.unwrap();
    let v2 = s.kv_read(MOUNT, "k", 2).await.unwrap().unwrap().version;
    assert!(v2.destroyed);
    assert!(v2.value.is_none());
    assert_eq!(total_data_keys(s).await, 2);
    // A destroyed version cannot be undeleted or deleted back to life.
    s.kv_undelete_versions(MOUNT, "k", &[2]).await.unwrap();
    s.kv_delete_versions(MOUNT, "k", KvVersions::These(&[2]), 700)
        .await
        .unwrap();
    let v2 = s.kv_read(MOUNT, "k", 2).await.unwrap().unwrap().version;
    assert!(v2.destroyed && v2.deletion_time.is_none());
    // Unknown versions and keys are no-ops.
    s.kv_destroy_versions(MOUNT, "k", &[99]).await.unwrap();
    s.kv_delete_versions(MOUNT, "nope", KvVersions::Latest, 1)
        .await
        .unwrap();
}

pub async fn metadata_updates_only_what_is_given(s: &Storage) {
    let update = KvMetadataUpdate {
        max_versions: Some(7),
        custom_metadata: Some(Some(blob("c1"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 10).await.unwrap();
    let meta = s.kv_metadata(MOUNT, "k").await.unwrap().unwrap();
    assert_eq!(meta.current_version, 0);
    assert_eq!(meta.settings.max_versions, 7);
    assert_eq!(meta.custom_metadata.unwrap().ciphertext, b"sealed:c1");
    let update = KvMetadataUpdate {
        cas_required: Some(true),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 20).await.unwrap();
    let meta = s.kv_metadata(MOUNT, "k").await.unwrap().unwrap();
    assert_eq!(
        (meta.settings.max_versions, meta.settings.cas_required),
        (7, true)
    );
    assert_eq!((meta.created_at, meta.updated_at), (10, 20));
    assert!(meta.custom_metadata.is_some());
    // Replacing the custom metadata shreds the old data key.
    let update = KvMetadataUpdate {
        custom_metadata: Some(Some(blob("c2"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 30).await.unwrap();
    assert_eq!(total_data_keys(s).await, 1);
    let update = KvMetadataUpdate {
        custom_metadata: Some(None),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 40).await.unwrap();
    assert!(
        s.kv_metadata(MOUNT, "k")
            .await
            .unwrap()
            .unwrap()
            .custom_metadata
            .is_none()
    );
    assert_eq!(total_data_keys(s).await, 0);
    // Reads of a version carry the key's custom metadata.
    let update = KvMetadataUpdate {
        custom_metadata: Some(Some(blob("c3"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 50).await.unwrap();
    put(s, "k", Some(0)).await; // cas_required was set above
    let read = s.kv_read(MOUNT, "k", 0).await.unwrap().unwrap();
    assert_eq!(read.custom_metadata.unwrap().ciphertext, b"sealed:c3");
}

pub async fn deleting_a_key_removes_everything(s: &Storage) {
    put(s, "k", None).await;
    put(s, "k", None).await;
    put(s, "keep", None).await;
    let update = KvMetadataUpdate {
        custom_metadata: Some(Some(blob("c"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 1).await.unwrap();
    s.kv_delete_key(MOUNT, "k").await.unwrap();
    assert!(s.kv_metadata(MOUNT, "k").await.unwrap().is_none());
    assert!(s.kv_read(MOUNT, "k", 1).await.unwrap().is_none());
    assert_eq!(total_data_keys(s).await, 1);
    // A new key at the same path starts again at version 1.
    assert_eq!(put(s, "k", None).await, 1);
}

pub async fn listing_folds_directories(s: &Storage) {
    for path in [
        "a",
        "app/db",
        "app/web/x",
        "app/web/y",
        "apple",
        "app2/z",
        "b/c",
        "app/zz",
    ] {
        put(s, path, None).await;
    }
    let list = |prefix: &'static str, after: &'static str, limit: u32| async move {
        s.kv_list(MOUNT, prefix, after, limit).await.unwrap()
    };
    assert_eq!(
        list("", "", 0).await,
        vec!["a", "app/", "app2/", "apple", "b/"]
    );
    assert_eq!(list("app/", "", 0).await, vec!["db", "web/", "zz"]);
    assert_eq!(list("app/web/", "", 0).await, vec!["x", "y"]);
    assert!(list("nothing/", "", 0).await.is_empty());
    assert_eq!(list("", "", 2).await, vec!["a", "app/"]);
    assert_eq!(list("", "app/", 2).await, vec!["app2/", "apple"]);
    assert_eq!(list("app/", "db", 0).await, vec!["web/", "zz"]);
    assert!(s.kv_list("other", "", "", 0).await.unwrap().is_empty());
}

pub async fn listing_pages_through_large_directories(s: &Storage) {
    let n = queries::LIST_BATCH as usize + 5;
    for i in 0..n {
        put(s, &format!("d/{i:05}"), None).await;
    }
    put(s, "d/sub/x", None).await;
    let all = s.kv_list(MOUNT, "d/", "", 0).await.unwrap();
    assert_eq!(all.len(), n + 1);
    assert_eq!(all.last().map(String::as_str), Some("sub/"));
}

pub async fn concurrent_writers_get_distinct_versions(s: &Storage) {
    let s = Arc::new(s.clone());
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { put(&s, "hot", None).await })
        })
        .collect();
    let mut versions = Vec::new();
    for w in writers {
        versions.push(w.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

pub async fn concurrent_cas_writers_have_one_winner_per_version(s: &Storage) {
    let s = Arc::new(s.clone());
    for round in 0..4u64 {
        let wins = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (s, wins) = (s.clone(), wins.clone());
                tokio::spawn(async move {
                    let outcome = s
                        .kv_write(&write("cas", Some(round), 1), |_| Ok::<_, ()>(blob("x")))
                        .await
                        .unwrap();
                    match outcome {
                        KvWriteOutcome::Written { version, .. } => {
                            assert_eq!(version, round + 1);
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        KvWriteOutcome::CasMismatch => {}
                        _ => panic!("unexpected outcome"),
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
    }
}

pub async fn every_change_is_seen_by_the_next_read(s: &Storage) {
    let latest = |s: &Storage| {
        let s = s.clone();
        async move { s.kv_read(MOUNT, "k", 0).await.unwrap() }
    };
    put(s, "k", None).await;
    assert_eq!(latest(s).await.unwrap().current_version, 1);
    put(s, "k", None).await;
    assert_eq!(latest(s).await.unwrap().current_version, 2, "a new version");
    s.kv_delete_versions(MOUNT, "k", KvVersions::Latest, 5)
        .await
        .unwrap();
    assert_eq!(
        latest(s).await.unwrap().version.deletion_time,
        Some(5),
        "a soft delete"
    );
    s.kv_undelete_versions(MOUNT, "k", &[2]).await.unwrap();
    assert_eq!(
        latest(s).await.unwrap().version.deletion_time,
        None,
        "an undelete"
    );
    let update = KvMetadataUpdate {
        custom_metadata: Some(Some(blob("c"))),
        ..KvMetadataUpdate::default()
    };
    s.kv_update_metadata(MOUNT, "k", &update, 6).await.unwrap();
    assert!(
        latest(s).await.unwrap().custom_metadata.is_some(),
        "new custom metadata"
    );
    s.kv_destroy_versions(MOUNT, "k", &[2]).await.unwrap();
    assert!(latest(s).await.unwrap().version.destroyed, "a destroy");
    s.kv_delete_key(MOUNT, "k").await.unwrap();
    assert!(latest(s).await.is_none(), "a deleted key");
    // Rewrapping changes how the data key is wrapped, never the value.
    put(s, "k", None).await;
    let before = latest(s).await.unwrap();
    let mut moved = before.version.value.clone().unwrap().dek;
    moved.term = 2;
    s.rewrap_data_keys(&[(moved, 1)]).await.unwrap();
    let after = latest(s).await.unwrap();
    assert_eq!(
        after.version.value.as_ref().unwrap().dek.term,
        2,
        "a rewrap"
    );
    s.delete_mount(MOUNT).await.unwrap();
    assert!(latest(s).await.is_none(), "an unmount");
}

pub async fn a_failing_write_does_not_fail_its_neighbours(s: &Storage) {
    let m = test_mount();
    let s = Arc::new(s.clone());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                // Same path and accessor: the unique keys refuse it.
                matches!(s.create_mount(&m).await, Err(StorageError::Conflict(_)))
            } else {
                put(&s, &format!("key{i}"), None).await == 1
            }
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(s.kv_list(MOUNT, "", "", 0).await.unwrap().len(), 16);
    assert_eq!(s.mounts().await.unwrap().len(), 1);
}

pub async fn a_cancelled_write_leaves_no_stale_read(s: &Storage) {
    put(s, "k", None).await;
    assert_eq!(
        s.kv_read(MOUNT, "k", 0)
            .await
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
    // Poll the write once (it is queued or started) and drop it, as hyper
    // drops a handler when its client goes away.
    let second = write("k", None, 2);
    let write_once = s.kv_write(&second, |_| Ok::<_, ()>(blob("x")));
    let finished = futures::FutureExt::now_or_never(write_once);
    assert!(
        finished.is_none(),
        "the write should not have finished in one poll"
    );
    // Whether or not the write went through (on SQLite it was queued and
    // commits; on PostgreSQL it never started), a read must agree with the
    // database whenever the database is not changing under it.
    let version = |s: &Storage| {
        let s = s.clone();
        async move {
            s.kv_metadata(MOUNT, "k")
                .await
                .unwrap()
                .unwrap()
                .current_version
        }
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let before = version(s).await;
        let read = s
            .kv_read(MOUNT, "k", 0)
            .await
            .unwrap()
            .unwrap()
            .current_version;
        let after = version(s).await;
        if before == after {
            assert_eq!(read, after, "the cached read disagrees with the database");
        }
        if after == 2 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn deleting_a_key_while_it_is_written_leaves_no_orphans(s: &Storage) {
    let s = Arc::new(s.clone());
    for _ in 0..10 {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        s.kv_delete_key(MOUNT, "hot").await.unwrap();
                    } else {
                        let w = write("hot", None, 1);
                        s.kv_write(&w, |_| Ok::<_, ()>(blob("x"))).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    s.kv_delete_key(MOUNT, "hot").await.unwrap();
    assert_eq!(total_data_keys(&s).await, 0, "a data key outlived its key");
    assert_eq!(put(&s, "hot", None).await, 1, "the key starts over cleanly");
}

/// A token below `parent` (or an orphan), with a use limit.
fn token(hash: u8, parent: Option<u8>, num_uses: u64) -> TokenRecord {
    let mut t = crate::auth::token::root_token_record(vec![hash], format!("acc{hash}"), 1);
    t.parent = parent.map(|p| vec![p]);
    t.orphan = parent.is_none();
    t.num_uses = num_uses;
    t.policies = vec!["default".into()];
    t
}

async fn is_live(s: &Storage, hash: u8) -> bool {
    s.token(&[hash]).await.unwrap().is_some()
}

pub async fn revoking_a_token_revokes_its_tree(s: &Storage) {
    // 1 ─ 2 ─ 3 ─ 4, and 1 ─ 5; 6 stands alone.
    for (hash, parent) in [
        (1, None),
        (2, Some(1)),
        (3, Some(2)),
        (4, Some(3)),
        (5, Some(1)),
        (6, None),
    ] {
        s.create_token(&token(hash, parent, 0)).await.unwrap();
    }
    s.revoke_token(&[2], false).await.unwrap();
    for hash in [2, 3, 4] {
        assert!(!is_live(s, hash).await, "token {hash} outlived its parent");
        assert!(
            s.token_by_accessor(&format!("acc{hash}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    for hash in [1, 5, 6] {
        assert!(
            is_live(s, hash).await,
            "token {hash} was not below the revoked one"
        );
    }
    // A child cannot be created below a revoked token.
    assert!(matches!(
        s.create_token(&token(7, Some(3), 0)).await,
        Err(StorageError::ParentRevoked)
    ));
    // Revoked rows are deleted by the sweep once nothing lives below them.
    while s.sweep_revoked_tokens(1).await.unwrap() > 0 {}
    let mut accessors = s.token_accessors().await.unwrap();
    accessors.sort();
    assert_eq!(accessors, vec!["acc1", "acc5", "acc6"]);

    // Revoking with orphan_children keeps the children, as orphans.
    s.create_token(&token(8, Some(1), 0)).await.unwrap();
    s.revoke_token(&[1], true).await.unwrap();
    assert!(!is_live(s, 1).await);
    for hash in [5, 8] {
        let child = s
            .token(&[hash])
            .await
            .unwrap()
            .expect("orphaned child lives");
        assert!(child.orphan && child.parent.is_none(), "token {hash}");
    }
}

pub async fn a_deep_tree_is_revoked_in_bounded_batches(s: &Storage) {
    // A chain longer than one cascade batch, and a wide fan below it.
    s.create_token(&token(0, None, 0)).await.unwrap();
    let mut parent = vec![0u8];
    for depth in 1..=30u16 {
        let mut t = token(0, None, 0);
        t.hash = depth.to_be_bytes().to_vec();
        t.accessor = format!("chain{depth}");
        t.parent = Some(parent.clone());
        t.orphan = false;
        s.create_token(&t).await.unwrap();
        parent = t.hash;
    }
    for i in 0..50u16 {
        let mut t = token(0, None, 0);
        t.hash = vec![9, (i >> 8) as u8, i as u8];
        t.accessor = format!("fan{i}");
        t.parent = Some(parent.clone());
        t.orphan = false;
        s.create_token(&t).await.unwrap();
    }
    s.revoke_token(&[0], false).await.unwrap();
    assert!(s.token_accessors().await.unwrap().is_empty());
    // A cascade batch touches at most its limit.
    s.create_token(&token(1, None, 0)).await.unwrap();
    for child in 2..6 {
        s.create_token(&token(child, Some(1), 0)).await.unwrap();
    }
    // Mark only the root revoked: an expired-token pass, as the cleanup does.
    let mut expiring = token(20, None, 0);
    expiring.expire_at = Some(5);
    s.create_token(&expiring).await.unwrap();
    for child in 21..25 {
        s.create_token(&token(child, Some(20), 0)).await.unwrap();
    }
    assert_eq!(s.revoke_expired_tokens(10, 100).await.unwrap(), 1);
    assert!(!is_live(s, 20).await, "an expired token is revoked at once");
    assert_eq!(s.cascade_revocations(3).await.unwrap(), 3);
    assert_eq!(s.cascade_revocations(3).await.unwrap(), 1);
    assert_eq!(s.cascade_revocations(3).await.unwrap(), 0);
    for hash in [1, 2, 3, 4, 5] {
        assert!(is_live(s, hash).await);
    }
}

pub async fn use_counts_are_spent_exactly_once(s: &Storage) {
    s.create_token(&token(1, None, 5)).await.unwrap();
    let s = Arc::new(s.clone());
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.use_token(&[1]).await.unwrap() })
        })
        .collect();
    let mut left = Vec::new();
    for attempt in attempts {
        if let Some(n) = attempt.await.unwrap() {
            left.push(n);
        }
    }
    left.sort_unstable();
    assert_eq!(left, vec![0, 1, 2, 3, 4], "each use counted once");
    assert_eq!(s.use_token(&[1]).await.unwrap(), None);
    assert!(
        s.token(&[1]).await.unwrap().is_none(),
        "the last use revoked it"
    );
}

pub async fn renewal_moves_the_expiry_of_live_tokens_only(s: &Storage) {
    let mut t = token(1, None, 0);
    t.expire_at = Some(100);
    s.create_token(&t).await.unwrap();
    assert!(s.renew_token(&[1], Some(500), 50).await.unwrap());
    let renewed = s.token(&[1]).await.unwrap().unwrap();
    assert_eq!(
        (renewed.expire_at, renewed.last_renewal),
        (Some(500), Some(50))
    );
    assert!(
        !s.renew_token(&[1], Some(900), 500).await.unwrap(),
        "an expired token cannot be renewed back to life"
    );
    s.revoke_token(&[1], false).await.unwrap();
    assert!(!s.renew_token(&[1], Some(900), 60).await.unwrap());
    assert!(!s.renew_token(&[42], Some(900), 60).await.unwrap());
}

pub async fn policies_round_trip(s: &Storage) {
    assert!(s.policy("dev").await.unwrap().is_none());
    s.put_policy("dev", "path \"a\" {}", 10).await.unwrap();
    s.put_policy("dev", "path \"b\" {}", 20).await.unwrap();
    let dev = s.policy("dev").await.unwrap().unwrap();
    assert_eq!(
        (
            dev.policy.as_str(),
            dev.version,
            dev.created_at,
            dev.updated_at
        ),
        ("path \"b\" {}", 2, 10, 20)
    );
    // ensure_policy never overwrites.
    s.ensure_policy("dev", "changed", 30).await.unwrap();
    s.ensure_policy("ops", "path \"c\" {}", 30).await.unwrap();
    assert_eq!(s.policy("dev").await.unwrap().unwrap().version, 2);
    assert_eq!(s.policy_names().await.unwrap(), vec!["dev", "ops"]);
    assert!(s.delete_policy("dev").await.unwrap());
    assert!(!s.delete_policy("dev").await.unwrap());
    assert_eq!(s.policy_names().await.unwrap(), vec!["ops"]);
}

pub async fn nodes_are_listed_until_they_expire(s: &Storage) {
    let node = |id: &str, last_seen: UnixNanos| NodeRecord {
        id: id.to_owned(),
        hostname: format!("host-{id}"),
        api_address: format!("https://host-{id}:8200"),
        version: "1.0.0".to_owned(),
        sealed: id == "b",
        started_at: 5,
        last_seen,
    };
    s.put_node(&node("a", 100)).await.unwrap();
    s.put_node(&node("b", 200)).await.unwrap();
    s.put_node(&node("c", 300)).await.unwrap();
    // A heartbeat moves last_seen (and what may change), not started_at.
    let mut again = node("a", 400);
    again.started_at = 99;
    again.sealed = true;
    s.put_node(&again).await.unwrap();
    let listed = s.nodes(200).await.unwrap();
    assert_eq!(
        listed,
        vec![
            NodeRecord {
                started_at: 5,
                ..again.clone()
            },
            node("b", 200),
            node("c", 300),
        ]
    );
    assert_eq!(s.nodes(301).await.unwrap().len(), 1);
    assert_eq!(s.delete_nodes_seen_before(300).await.unwrap(), 1);
    assert!(s.delete_node("c").await.unwrap());
    assert!(!s.delete_node("c").await.unwrap());
    let left: Vec<String> = s
        .nodes(0)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, ["a"]);
}

pub async fn every_cached_change_is_counted(s: &Storage) {
    async fn versions(s: &Storage) -> std::collections::BTreeMap<String, u64> {
        s.change_counters().await.unwrap().into_iter().collect()
    }
    let topics =
        |v: &std::collections::BTreeMap<String, u64>| v.keys().cloned().collect::<Vec<_>>();
    let before = versions(s).await;
    assert_eq!(topics(&before), ["audit", "keyring", "mounts", "policies"]);
    // Each write moves its topic's counter, and only that one.
    let moved = |a: &std::collections::BTreeMap<String, u64>,
                 b: &std::collections::BTreeMap<String, u64>| {
        a.iter()
            .filter(|(topic, version)| b[*topic] > **version)
            .map(|(topic, _)| topic.clone())
            .collect::<Vec<_>>()
    };
    s.put_policy("dev", "path \"a\" {}", 1).await.unwrap();
    let after_policy = versions(s).await;
    assert_eq!(moved(&before, &after_policy), ["policies"]);
    let mount = crate::core::mounts::kv_v2_record("other/", "").unwrap();
    s.create_mount(&mount).await.unwrap();
    s.tune_mount(&mount.uuid, "tuned", "{}").await.unwrap();
    let after_mount = versions(s).await;
    assert_eq!(moved(&after_policy, &after_mount), ["mounts"]);
    s.delete_mount(&mount.uuid).await.unwrap();
    let after_unmount = versions(s).await;
    assert_eq!(moved(&after_mount, &after_unmount), ["mounts"]);
    s.initialize(&init_record()).await.unwrap();
    let after_init = versions(s).await;
    assert!(moved(&after_unmount, &after_init).contains(&"keyring".to_string()));
    s.add_key_term(&KeyTermRecord {
        term: 2,
        sealed_key: b"kek2".to_vec(),
        installed_at: 50,
    })
    .await
    .unwrap();
    let after_rotation = versions(s).await;
    assert_eq!(moved(&after_init, &after_rotation), ["keyring"]);
    let device = AuditDeviceRecord {
        path: "file/".into(),
        uuid: "44444444-4444-4444-4444-444444444444".into(),
        device_type: "file".into(),
        description: String::new(),
        options: "{}".into(),
        local: false,
        hmac_key: Some(blob("audit")),
        created_at: 5,
    };
    s.create_audit_device(&device).await.unwrap();
    s.delete_audit_device("file/").await.unwrap();
    let after_audit = versions(s).await;
    assert_eq!(moved(&after_rotation, &after_audit), ["audit"]);
    // Reads and other writes count nothing.
    put(s, "x", None).await;
    s.policy("dev").await.unwrap();
    assert_eq!(versions(s).await, after_audit);
}

pub async fn audit_devices_round_trip(s: &Storage) {
    let before = total_data_keys(s).await;
    let device = AuditDeviceRecord {
        path: "file/".into(),
        uuid: "22222222-2222-2222-2222-222222222222".into(),
        device_type: "file".into(),
        description: "main log".into(),
        options: r#"{"file_path":"/var/log/a.log"}"#.into(),
        local: false,
        hmac_key: Some(blob("audit")),
        created_at: 5,
    };
    s.create_audit_device(&device).await.unwrap();
    assert_eq!(s.audit_devices().await.unwrap(), vec![device.clone()]);
    let mut clash = device.clone();
    clash.uuid = "33333333-3333-3333-3333-333333333333".into();
    clash.hmac_key = Some(blob("other"));
    assert!(matches!(
        s.create_audit_device(&clash).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        total_data_keys(s).await,
        before + 1,
        "a refused device leaves no key"
    );
    assert!(s.delete_audit_device("file/").await.unwrap());
    assert!(!s.delete_audit_device("file/").await.unwrap());
    assert!(s.audit_devices().await.unwrap().is_empty());
    assert_eq!(total_data_keys(s).await, before, "its key is shredded");
}

pub async fn mount_entries_are_sealed_records_that_die_with_their_mount(s: &Storage) {
    let keys_before = total_data_keys(s).await;
    for (path, tag) in [
        ("role/dev", "dev"),
        ("role/prod", "prod"),
        ("config", "config"),
    ] {
        s.put_mount_entry(MOUNT, path, &blob(tag), 1).await.unwrap();
    }
    let replaced = blob("dev2");
    s.put_mount_entry(MOUNT, "role/dev", &replaced, 2)
        .await
        .unwrap();
    assert_eq!(
        s.mount_entry(MOUNT, "role/dev").await.unwrap(),
        Some(replaced)
    );
    assert_eq!(
        total_data_keys(s).await,
        keys_before + 3,
        "a replaced record's data key is shredded"
    );
    assert_eq!(
        s.mount_entry_paths(MOUNT, "role/", 100).await.unwrap(),
        vec!["role/dev", "role/prod"]
    );
    assert_eq!(
        s.mount_entry_paths(MOUNT, "", 1).await.unwrap(),
        vec!["config"]
    );
    assert!(
        s.mount_entry_paths("other", "", 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.delete_mount_entry(MOUNT, "role/prod").await.unwrap());
    assert!(!s.delete_mount_entry(MOUNT, "role/prod").await.unwrap());
    assert!(s.mount_entry(MOUNT, "role/prod").await.unwrap().is_none());
    assert_eq!(total_data_keys(s).await, keys_before + 2);

    // A token the mount issued keeps its sealed data in its own row.
    let mut issued = token(7, None, 0);
    issued.auth_mount = Some(MOUNT.into());
    issued.internal = Some(blob("internal"));
    s.create_token(&issued).await.unwrap();
    assert_eq!(s.token(&[7]).await.unwrap().unwrap(), issued);
    s.create_token(&token(8, None, 0)).await.unwrap();

    // Deleting the mount deletes its records and keys, and revokes its
    // tokens (only its own).
    s.delete_mount(MOUNT).await.unwrap();
    assert!(s.mount_entry(MOUNT, "config").await.unwrap().is_none());
    assert!(
        s.mount_entry_paths(MOUNT, "", 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(total_data_keys(s).await, 0);
    assert!(
        !is_live(s, 7).await,
        "a token of a deleted auth mount lives"
    );
    assert!(is_live(s, 8).await);
    let late = s.put_mount_entry(MOUNT, "late", &blob("late"), 3).await;
    assert!(matches!(late, Err(StorageError::MountGone)), "{late:?}");
    assert_eq!(total_data_keys(s).await, 0);
}

/// A lease of the test mount, for `role`, expiring at `expire_at`.
fn lease(id: &str, role: &str, token: Option<u8>, expire_at: UnixNanos) -> LeaseRecord {
    LeaseRecord {
        id: id.to_owned(),
        mount_uuid: MOUNT.to_owned(),
        role: role.to_owned(),
        token_hash: token.map(|t| vec![t]),
        issued_at: 1,
        expire_at,
        last_renewal: None,
        renewable: true,
        secret: blob(id),
        due_at: expire_at,
        attempts: 0,
        irrevocable: false,
        last_error: None,
    }
}

pub async fn leases_round_trip_and_list_by_prefix(s: &Storage) {
    s.create_token(&token(1, None, 0)).await.unwrap();
    let first = lease("db/creds/ro/a", "ro", Some(1), 100);
    s.create_lease(&first, 0).await.unwrap();
    assert_eq!(s.lease(&first.id).await.unwrap(), Some(first.clone()));
    assert!(matches!(
        s.create_lease(&first, 0).await,
        Err(StorageError::Conflict(_))
    ));
    for id in ["db/creds/ro/b", "db/creds/rw/c", "db/creds/ro2/d"] {
        s.create_lease(&lease(id, "x", None, 100), 0).await.unwrap();
    }
    assert_eq!(
        s.lease_ids("db/creds/ro/", 100).await.unwrap(),
        vec!["db/creds/ro/a", "db/creds/ro/b"]
    );
    assert_eq!(s.lease_ids("", 2).await.unwrap().len(), 2);
    assert_eq!(s.lease_counts().await.unwrap(), (4, 0));

    // A lease for a revoked token, or on a deleted mount, is refused.
    s.revoke_token(&[1], false).await.unwrap();
    let late = s
        .create_lease(&lease("db/creds/ro/e", "ro", Some(1), 100), 0)
        .await;
    assert!(matches!(late, Err(StorageError::ParentRevoked)), "{late:?}");
    let mut elsewhere = lease("other/x", "ro", None, 100);
    elsewhere.mount_uuid = "gone".into();
    assert!(matches!(
        s.create_lease(&elsewhere, 0).await,
        Err(StorageError::MountGone)
    ));

    // Deleting the mount deletes its leases and their keys.
    s.delete_mount(MOUNT).await.unwrap();
    assert_eq!(s.lease_counts().await.unwrap(), (0, 0));
    assert_eq!(total_data_keys(s).await, 0);
}

pub async fn renewal_stops_at_expiry_and_at_revocation(s: &Storage) {
    s.create_lease(&lease("l/a", "r", None, 100), 0)
        .await
        .unwrap();
    assert!(s.renew_lease("l/a", 200, 50).await.unwrap());
    let renewed = s.lease("l/a").await.unwrap().unwrap();
    assert_eq!((renewed.expire_at, renewed.due_at), (200, 200));
    assert_eq!(renewed.last_renewal, Some(50));
    assert!(
        !s.renew_lease("l/a", 400, 200).await.unwrap(),
        "renewed when expired"
    );
    assert!(!s.renew_lease("nope", 400, 1).await.unwrap());
    // Marked for revocation (revoke-prefix): no more renewals.
    s.create_lease(&lease("l/b", "r", None, 1_000), 0)
        .await
        .unwrap();
    assert_eq!(s.expire_leases("l/", 60).await.unwrap(), 2);
    assert!(!s.renew_lease("l/b", 2_000, 70).await.unwrap());
    // A claimed lease is no longer valid, whatever its expiry said.
    s.create_lease(&lease("m/c", "r", None, 1_000), 0)
        .await
        .unwrap();
    let claimed = s.claim_lease("m/c", 80, 500).await.unwrap().unwrap();
    assert_eq!(
        (claimed.expire_at, claimed.due_at, claimed.attempts),
        (80, 500, 1)
    );
    assert!(!s.renew_lease("m/c", 2_000, 90).await.unwrap());
}

/// A lease stored before its secret was made, due at the end of the
/// reservation (500), settles to its expiry (100) only if nothing took it
/// meanwhile: not a claim, not a revoke-prefix.
pub async fn a_reserved_lease_settles_only_if_untouched(s: &Storage) {
    let reserved = |id| LeaseRecord {
        due_at: 500,
        ..lease(id, "r", None, 100)
    };
    s.create_lease(&reserved("r/a"), 0).await.unwrap();
    assert!(s.settle_lease("r/a", 500, 100).await.unwrap());
    let settled = s.lease("r/a").await.unwrap().unwrap();
    assert_eq!((settled.expire_at, settled.due_at), (100, 100));
    assert!(!s.settle_lease("r/a", 500, 100).await.unwrap(), "twice");
    assert!(!s.settle_lease("nope", 500, 100).await.unwrap());
    // Claimed (the reservation ran out on a dead node): stays claimed.
    s.create_lease(&reserved("r/b"), 0).await.unwrap();
    s.claim_lease("r/b", 600, 900).await.unwrap().unwrap();
    assert!(!s.settle_lease("r/b", 500, 100).await.unwrap());
    assert_eq!(s.lease("r/b").await.unwrap().unwrap().due_at, 900);
    // Made due by a revoke-prefix (or its token's revocation): stays due.
    s.create_lease(&reserved("r/c"), 0).await.unwrap();
    assert_eq!(s.expire_leases("r/c", 50).await.unwrap(), 1);
    assert!(!s.settle_lease("r/c", 500, 100).await.unwrap());
    assert_eq!(s.lease("r/c").await.unwrap().unwrap().due_at, 50);
}

pub async fn due_leases_are_claimed_once_and_taken_over_after_the_deadline(s: &Storage) {
    let s = Arc::new(s.clone());
    for i in 0..120 {
        s.create_lease(&lease(&format!("due/{i:03}"), "r", None, 10), 0)
            .await
            .unwrap();
    }
    s.create_lease(&lease("later/x", "r", None, 1_000), 0)
        .await
        .unwrap();
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = s.claim_due_leases(100, 500, 7).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|l| l.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    let expected: Vec<String> = (0..120).map(|i| format!("due/{i:03}")).collect();
    assert_eq!(all, expected, "every due lease claimed exactly once");
    // Nothing is due again before the claims' deadline...
    assert!(s.claim_due_leases(499, 900, 500).await.unwrap().is_empty());
    // ...and a claim that was never finished is taken over after it.
    s.finish_lease("due/000").await.unwrap();
    let again = s.claim_due_leases(500, 900, 500).await.unwrap();
    assert_eq!(again.len(), 119);
    assert!(again.iter().all(|l| l.attempts == 2));
}

pub async fn failed_revocations_back_off_then_become_irrevocable(s: &Storage) {
    let keys = total_data_keys(s).await;
    s.create_lease(&lease("f/a", "r", None, 10), 0)
        .await
        .unwrap();
    s.create_lease(&lease("f/b", "r", None, 10), 0)
        .await
        .unwrap();
    assert_eq!(s.claim_due_leases(20, 30, 10).await.unwrap().len(), 2);
    s.fail_lease("f/a", 100, "connection refused", false)
        .await
        .unwrap();
    s.fail_lease("f/b", 40, "role owns objects", true)
        .await
        .unwrap();
    assert!(s.claim_due_leases(99, 200, 10).await.unwrap().is_empty());
    let retried = s.claim_due_leases(100, 200, 10).await.unwrap();
    assert_eq!(retried.len(), 1, "the irrevocable lease is never retried");
    assert_eq!(retried[0].last_error.as_deref(), Some("connection refused"));
    assert_eq!(s.lease_counts().await.unwrap(), (2, 1));
    let stuck = s.irrevocable_leases(10).await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].last_error.as_deref(), Some("role owns objects"));
    assert!(s.claim_lease("f/b", 300, 400).await.unwrap().is_none());
    // revoke-force drops it, key and all.
    assert_eq!(s.force_delete_leases("f/b").await.unwrap(), 1);
    assert!(s.finish_lease("f/a").await.unwrap());
    assert_eq!(s.lease_counts().await.unwrap(), (0, 0));
    assert_eq!(total_data_keys(s).await, keys);
}

pub async fn lease_stats_count_by_role_and_find_the_most_overdue(s: &Storage) {
    let empty = s.lease_stats(50).await.unwrap();
    assert_eq!((empty.by_role.len(), empty.oldest_overdue), (0, None));
    for (id, role, expire_at) in [("m/a", "ro", 10), ("m/b", "ro", 30), ("m/c", "rw", 100)] {
        s.create_lease(&lease(id, role, None, expire_at), 0)
            .await
            .unwrap();
    }
    // m/a is claimed (its due date moves to the claim's deadline) and
    // fails for good; m/b's revocation fails and waits for a retry.
    assert_eq!(s.claim_due_leases(40, 60, 10).await.unwrap().len(), 2);
    s.fail_lease("m/a", 200, "refused", true).await.unwrap();
    s.fail_lease("m/b", 200, "refused", false).await.unwrap();
    let stats = s.lease_stats(50).await.unwrap();
    let mut by_role: Vec<_> = stats
        .by_role
        .iter()
        .map(|r| {
            (
                r.mount_uuid.as_str(),
                r.role.as_str(),
                r.leases,
                r.irrevocable,
            )
        })
        .collect();
    by_role.sort();
    assert_eq!(by_role, vec![(MOUNT, "ro", 2, 1), (MOUNT, "rw", 1, 0)]);
    assert_eq!(
        stats.oldest_overdue,
        Some(30),
        "m/b, overdue since its expiry; the irrevocable m/a is not waited for"
    );
    assert_eq!(stats.read_at, 50);
    // A revoke-prefix makes a lease due before its expiry.
    s.expire_leases("m/c", 45).await.unwrap();
    s.force_delete_leases("m/b").await.unwrap();
    assert_eq!(s.lease_stats(50).await.unwrap().oldest_overdue, Some(45));
}

pub async fn a_role_quota_holds_under_concurrent_creation(s: &Storage) {
    let s = Arc::new(s.clone());
    let creators: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_lease(&lease(&format!("q/{i}"), "limited", None, 100), 5)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for c in creators {
        match c.await.unwrap() {
            Ok(()) => created += 1,
            Err(StorageError::QuotaExceeded(held)) => assert_eq!(held, 5),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(s.role_lease_count(MOUNT, "limited").await.unwrap(), 5);
    // Another role is not limited by this one's quota.
    s.create_lease(&lease("q/other", "free", None, 100), 5)
        .await
        .unwrap();
}

pub async fn a_revoked_tokens_leases_fall_due_before_it_is_deleted(s: &Storage) {
    s.create_token(&token(1, None, 0)).await.unwrap();
    s.create_token(&token(2, Some(1), 0)).await.unwrap();
    s.create_lease(&lease("t/a", "r", Some(2), 1_000), 0)
        .await
        .unwrap();
    s.create_lease(&lease("t/b", "r", None, 1_000), 0)
        .await
        .unwrap();
    s.revoke_token(&[1], false).await.unwrap();
    assert_eq!(s.expire_leases_of_revoked_tokens(50, 100).await.unwrap(), 1);
    // The child token stays (revoked) while it owns a lease.
    s.sweep_revoked_tokens(100).await.unwrap();
    let due = s.claim_due_leases(50, 60, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["t/a"]
    );
    assert!(s.finish_lease("t/a").await.unwrap());
    assert_eq!(s.sweep_revoked_tokens(100).await.unwrap(), 1);
    assert!(
        s.lease("t/b").await.unwrap().is_some(),
        "another token's lease"
    );
}

pub async fn jobs_are_claimed_once_then_rescheduled_or_retried(s: &Storage) {
    let s = Arc::new(s.clone());
    for i in 0..40 {
        s.schedule(MOUNT, &format!("job/{i:02}"), 10).await.unwrap();
    }
    s.schedule(MOUNT, "later", 1_000).await.unwrap();
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let jobs = s.claim_due_jobs(100, 500, 3).await.unwrap();
                    if jobs.is_empty() {
                        return mine;
                    }
                    mine.extend(jobs.into_iter().map(|j| j.name));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (0..40).map(|i| format!("job/{i:02}")).collect::<Vec<_>>()
    );
    // A claimed job cannot be claimed again, due or on demand, until the
    // claim's deadline...
    assert!(s.claim_due_jobs(499, 900, 100).await.unwrap().is_empty());
    assert_eq!(s.claim_job(MOUNT, "job/00", 499, 900).await.unwrap(), None);
    // ...after which another node takes it over.
    assert_eq!(
        s.claim_job(MOUNT, "job/00", 500, 900).await.unwrap(),
        Some(2)
    );
    // A finished run is due again at its next time; a failed one at its retry.
    s.finish_job(MOUNT, "job/00", 2_000).await.unwrap();
    s.fail_job(MOUNT, "job/01", 600, "connection refused")
        .await
        .unwrap();
    let job = s.scheduled(MOUNT, "job/00").await.unwrap().unwrap();
    assert_eq!(
        (job.due_at, job.claimed_until, job.attempts),
        (2_000, None, 0)
    );
    let failed = s.scheduled(MOUNT, "job/01").await.unwrap().unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("connection refused"));
    let retried = s.claim_due_jobs(600, 1_000, 100).await.unwrap();
    let names: Vec<&str> = retried.iter().map(|j| j.name.as_str()).collect();
    assert!(
        names.contains(&"job/01") && !names.contains(&"job/00"),
        "{names:?}"
    );
    // A job on demand, not due: claimable when no claim holds it.
    assert_eq!(
        s.claim_job(MOUNT, "later", 700, 800).await.unwrap(),
        Some(1)
    );
    assert!(s.unschedule(MOUNT, "later").await.unwrap());
    assert!(!s.unschedule(MOUNT, "later").await.unwrap());
    // Deleting the mount deletes its jobs.
    s.delete_mount(MOUNT).await.unwrap();
    assert!(s.scheduled(MOUNT, "job/00").await.unwrap().is_none());
}
