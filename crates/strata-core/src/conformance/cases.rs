//! Conformance cases for single-key writes, ranges, old revisions, history and
//! compaction. Each case takes the store and the key prefix it owns.

use super::{key, text};
use crate::error::Error;
use crate::model::*;
use crate::store::{scan, Store};

pub async fn get_missing_key_is_none<S: Store>(s: &S, p: &str) {
    assert_eq!(s.get(&key(p, "nothing")).await.unwrap(), None);
    let resp = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))))
        .await
        .unwrap();
    assert!(resp.kvs.is_empty() && !resp.more && resp.count == 0);
    assert!(resp.revision >= 1);
}

pub async fn put_then_get_has_fresh_metadata<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (rev, prev) = s.put(&k, b"1").await.unwrap();
    assert_eq!(prev, None);
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: k,
            value: b"1".to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1
        }
    );
}

pub async fn put_on_existing_key_bumps_version_and_mod_revision<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (r1, _) = s.put(&k, b"1").await.unwrap();
    let (r2, _) = s.put(&k, b"2").await.unwrap();
    let (r3, _) = s.put(&k, b"3").await.unwrap();
    assert!(r1 < r2 && r2 < r3);
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r3, 3)
    );
    assert_eq!(text(&kv), "3");
}

pub async fn put_returns_prev_kv<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (r1, _) = s.put(&k, b"old").await.unwrap();
    let (_, prev) = s.put(&k, b"new").await.unwrap();
    let prev = prev.expect("prev_kv of an existing key");
    assert_eq!(
        (text(&prev).as_str(), prev.mod_revision, prev.version),
        ("old", r1, 1)
    );
}

pub async fn delete_then_put_restarts_version<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (r1, _) = s.put(&k, b"1").await.unwrap();
    s.put(&k, b"2").await.unwrap();
    let (rd, n) = s.delete(KeySpan::key(k.clone())).await.unwrap();
    assert_eq!(n, 1);
    assert!(rd > r1);
    assert_eq!(s.get(&k).await.unwrap(), None);
    let (r4, _) = s.put(&k, b"3").await.unwrap();
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r4, r4, 1)
    );
    assert!(r4 > rd);
}

pub async fn delete_returns_count_and_missing_is_zero<S: Store>(s: &S, p: &str) {
    for name in ["x/1", "x/2", "x/3"] {
        s.put(&key(p, name), b"v").await.unwrap();
    }
    let (_, n) = s.delete(KeySpan::prefix(key(p, "x/"))).await.unwrap();
    assert_eq!(n, 3);
    let (_, n) = s.delete(KeySpan::key(key(p, "x/1"))).await.unwrap();
    assert_eq!(n, 0);
}

pub async fn delete_prefix_deletes_the_subtree_only<S: Store>(s: &S, p: &str) {
    for name in ["a", "a/1", "a/2/x", "ab", "a0", "b"] {
        s.put(&key(p, name), b"v").await.unwrap();
    }
    let (_, n) = s.delete(KeySpan::prefix(key(p, "a/"))).await.unwrap();
    assert_eq!(n, 2);
    let left = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))))
        .await
        .unwrap();
    let keys: Vec<_> = left.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        vec![key(p, "a"), key(p, "a0"), key(p, "ab"), key(p, "b")]
    );
}

pub async fn delete_half_open_range<S: Store>(s: &S, p: &str) {
    for name in ["1", "2", "3", "4"] {
        s.put(&key(p, name), b"v").await.unwrap();
    }
    let span = KeySpan::Range {
        start: key(p, "2"),
        end: Some(key(p, "4")),
    };
    assert_eq!(s.delete(span).await.unwrap().1, 2);
    let left = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))))
        .await
        .unwrap();
    let keys: Vec<_> = left.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![key(p, "1"), key(p, "4")]);
}

pub async fn range_prefix_is_sorted_bytewise<S: Store>(s: &S, p: &str) {
    let names = ["b", "a", "Z", "é", "a/b", "a b", "~", "0", "李"];
    for name in names {
        s.put(&key(p, name), name.as_bytes()).await.unwrap();
    }
    let mut expected: Vec<Vec<u8>> = names.iter().map(|n| key(p, n)).collect();
    expected.sort();
    let resp = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))))
        .await
        .unwrap();
    let keys: Vec<_> = resp.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, expected);
    assert_eq!(resp.count, names.len() as i64);
}

pub async fn range_limit_sets_more<S: Store>(s: &S, p: &str) {
    for i in 0..5 {
        s.put(&key(p, &format!("k{i}")), b"v").await.unwrap();
    }
    let req = RangeRequest::new(KeySpan::prefix(key(p, ""))).with_limit(2);
    let resp = s.range(req).await.unwrap();
    assert_eq!(resp.kvs.len(), 2);
    assert!(resp.more);
    assert!(resp.count >= 2);
    let req = RangeRequest::new(KeySpan::prefix(key(p, ""))).with_limit(5);
    let resp = s.range(req).await.unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (5, false));
}

pub async fn range_pages_with_continuation_at_one_revision<S: Store>(s: &S, p: &str) {
    let n = s.capabilities().range_page_size.clamp(1, 50) as usize * 2 + 3;
    let txn_ops = s.capabilities().max_txn_ops;
    let names: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
    for chunk in names.chunks(txn_ops) {
        let ops = chunk
            .iter()
            .map(|name| Op::put(key(p, name), name.as_bytes()));
        s.txn(Txn::new().and_then(ops)).await.unwrap();
    }
    let at = s
        .range(RangeRequest::new(KeySpan::key(key(p, "k0000"))))
        .await
        .unwrap()
        .revision;
    // A write after the pinned revision must not show up in the pages.
    s.put(&key(p, "k0001"), b"changed").await.unwrap();
    let mut seen = Vec::new();
    let read_at = scan(s, KeySpan::prefix(key(p, "")), at, |page| {
        seen.extend(page);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(read_at, at);
    assert_eq!(seen.len(), n);
    assert!(seen
        .iter()
        .zip(&names)
        .all(|(kv, name)| kv.key == key(p, name)));
    assert_eq!(text(&seen[1]), "k0001");
}

pub async fn range_keys_only<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "a"), b"value").await.unwrap();
    let resp = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))).keys_only())
        .await
        .unwrap();
    assert_eq!(resp.kvs.len(), 1);
    assert_eq!(resp.kvs[0].key, key(p, "a"));
    assert!(resp.kvs[0].value.is_empty());
    assert_eq!(resp.kvs[0].version, 1);
}

pub async fn range_count_only<S: Store>(s: &S, p: &str) {
    for i in 0..7 {
        s.put(&key(p, &format!("c/{i}")), b"v").await.unwrap();
    }
    let resp = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, "c/"))).count_only())
        .await
        .unwrap();
    assert_eq!(resp.count, 7);
    assert!(resp.kvs.is_empty());
}

pub async fn range_empty_or_inverted_span<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "m"), b"v").await.unwrap();
    let span = KeySpan::Range {
        start: key(p, "z"),
        end: Some(key(p, "a")),
    };
    assert!(s
        .range(RangeRequest::new(span))
        .await
        .unwrap()
        .kvs
        .is_empty());
    let span = KeySpan::Range {
        start: key(p, "m"),
        end: Some(key(p, "m")),
    };
    assert!(s
        .range(RangeRequest::new(span))
        .await
        .unwrap()
        .kvs
        .is_empty());
}

pub async fn binary_keys_and_values_round_trip<S: Store>(s: &S, p: &str) {
    let mut k = key(p, "bin-");
    k.extend_from_slice(&[0x00, 0xff, 0xfe, b'/', 0x80]);
    let value: Vec<u8> = (0..=255u8).collect();
    s.put(&k, &value).await.unwrap();
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!((kv.key, kv.value), (k.clone(), value));
    let resp = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, "bin-"))))
        .await
        .unwrap();
    assert_eq!(resp.kvs.len(), 1);
}

pub async fn empty_value_is_a_value<S: Store>(s: &S, p: &str) {
    let k = key(p, "empty");
    s.put(&k, b"").await.unwrap();
    let kv = s
        .get(&k)
        .await
        .unwrap()
        .expect("a key with an empty value exists");
    assert!(kv.value.is_empty());
    assert_eq!(kv.version, 1);
}

pub async fn odd_path_keys_round_trip<S: Store>(s: &S, p: &str) {
    let names = [
        "a/b%2Fc",
        "unicode/Zoë Ångström 李",
        "spaces/with space",
        "ip/2a01:4f8:c0c:1::78",
    ];
    for name in names {
        s.put(&key(p, name), name.as_bytes()).await.unwrap();
    }
    for name in names {
        let kv = s.get(&key(p, name)).await.unwrap().unwrap();
        assert_eq!(text(&kv), name);
    }
}

pub async fn value_at_size_limit_and_over<S: Store>(s: &S, p: &str) {
    let limit = s.capabilities().max_value_bytes.min(1 << 20);
    s.put(&key(p, "big"), &vec![b'x'; limit]).await.unwrap();
    assert_eq!(
        s.get(&key(p, "big")).await.unwrap().unwrap().value.len(),
        limit
    );
    let limit = s.capabilities().max_value_bytes;
    if limit < (64 << 20) {
        let err = s
            .put(&key(p, "huge"), &vec![b'x'; limit + 1])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
        assert!(
            err.to_string().contains("huge"),
            "the error names the key: {err}"
        );
    }
}

/// Regression (adversarial trials): SQLite and PostgreSQL took the empty key, etcd
/// refused it with its raw message, and PostgreSQL refused keys over ~2.7 KB that the
/// others took, so a copy could stop half-way. One rule on every backend.
pub async fn one_key_rule_on_every_backend<S: Store>(s: &S, p: &str) {
    use crate::model::MAX_KEY_BYTES;
    let err = s.put(b"", b"x").await.unwrap_err();
    assert!(matches!(err, Error::KeyNotAccepted { .. }), "{err}");
    assert!(err.to_string().contains("empty key"), "{err}");
    // The longest key is written, indexed, read back and listed.
    let mut long = key(p, "long/");
    long.resize(MAX_KEY_BYTES, b'k');
    s.put(&long, b"v").await.unwrap();
    assert_eq!(s.get(&long).await.unwrap().unwrap().value, b"v");
    let listed = s
        .range(crate::model::RangeRequest::new(
            crate::model::KeySpan::prefix(key(p, "long/")),
        ))
        .await
        .unwrap();
    assert_eq!(listed.kvs.len(), 1);
    long.push(b'k');
    let err = s.put(&long, b"v").await.unwrap_err();
    assert!(matches!(err, Error::KeyNotAccepted { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} bytes", MAX_KEY_BYTES + 1)),
        "{text}"
    );
    assert!(
        text.len() < 400,
        "the message quotes an excerpt, not the key: {text}"
    );
    assert!(s.get(&long).await.unwrap().is_none());
}

pub async fn read_at_old_revision_sees_old_value<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (r1, _) = s.put(&k, b"1").await.unwrap();
    let (r2, _) = s.put(&k, b"2").await.unwrap();
    let old = s
        .range(RangeRequest::new(KeySpan::key(k.clone())).at_revision(r1))
        .await
        .unwrap();
    assert_eq!(old.revision, r1);
    assert_eq!(
        (
            text(&old.kvs[0]),
            old.kvs[0].version,
            old.kvs[0].mod_revision
        ),
        ("1".into(), 1, r1)
    );
    let new = s
        .range(RangeRequest::new(KeySpan::key(k)).at_revision(r2))
        .await
        .unwrap();
    assert_eq!(text(&new.kvs[0]), "2");
}

pub async fn read_at_old_revision_sees_deleted_key<S: Store>(s: &S, p: &str) {
    let k = key(p, "gone");
    let (r1, _) = s.put(&k, b"was here").await.unwrap();
    s.put(&key(p, "other"), b"x").await.unwrap();
    s.delete(KeySpan::key(k.clone())).await.unwrap();
    let old = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))).at_revision(r1))
        .await
        .unwrap();
    assert_eq!(old.kvs.len(), 1);
    assert_eq!(text(&old.kvs[0]), "was here");
    assert_eq!(s.get(&k).await.unwrap(), None);
}

pub async fn read_before_creation_is_empty<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "first"), b"1").await.unwrap();
    s.put(&key(p, "second"), b"2").await.unwrap();
    let old = s
        .range(RangeRequest::new(KeySpan::key(key(p, "second"))).at_revision(r1))
        .await
        .unwrap();
    assert!(old.kvs.is_empty());
}

pub async fn read_in_the_future_is_an_error<S: Store>(s: &S, p: &str) {
    let (r, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let err = s
        .range(RangeRequest::new(KeySpan::key(key(p, "a"))).at_revision(r + 1_000_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
}

pub async fn history_lists_every_change<S: Store>(s: &S, p: &str) {
    let k = key(p, "h");
    let (r1, _) = s.put(&k, b"1").await.unwrap();
    let (r2, _) = s.put(&k, b"2").await.unwrap();
    let (r3, _) = s.delete(KeySpan::key(k.clone())).await.unwrap();
    let (r4, _) = s.put(&k, b"3").await.unwrap();
    let history = s.history(&k).await.unwrap();
    let summary: Vec<(EventKind, i64, i64, String)> = history
        .iter()
        .map(|e| (e.kind, e.revision(), e.kv.version, text(&e.kv)))
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::Put, r1, 1, "1".into()),
            (EventKind::Put, r2, 2, "2".into()),
            (EventKind::Delete, r3, 0, "".into()),
            (EventKind::Put, r4, 1, "3".into()),
        ]
    );
    assert!(s.history(&key(p, "never")).await.unwrap().is_empty());
}

pub async fn empty_txn_and_noop_writes_do_not_bump_revision<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    assert_eq!(s.txn(Txn::new()).await.unwrap().revision, r1);
    assert_eq!(
        s.delete(KeySpan::key(key(p, "missing"))).await.unwrap(),
        (r1, 0)
    );
    let failed = Txn::new()
        .when([Compare::absent(key(p, "a"))])
        .and_then([Op::put(key(p, "b"), "x")]);
    let resp = s.txn(failed).await.unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.revision, r1);
    let read = Txn::new().and_then([Op::get(KeySpan::key(key(p, "a")))]);
    assert_eq!(s.txn(read).await.unwrap().revision, r1);
    let (r2, _) = s.put(&key(p, "a"), b"2").await.unwrap();
    assert_eq!(r2, r1 + 1);
}

pub async fn put_with_same_value_still_bumps_revision<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "a"), b"same").await.unwrap();
    let (r2, _) = s.put(&key(p, "a"), b"same").await.unwrap();
    assert_eq!(r2, r1 + 1);
    assert_eq!(s.get(&key(p, "a")).await.unwrap().unwrap().version, 2);
}

pub async fn status_reports_revision<S: Store>(s: &S, p: &str) {
    let (r, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let status = s.status().await.unwrap();
    assert_eq!(status.revision, r);
    assert!(status.compact_revision < r);
}

pub async fn compact_makes_older_reads_fail<S: Store>(s: &S, p: &str) {
    let k = key(p, "a");
    let (r1, _) = s.put(&k, b"1").await.unwrap();
    let (r2, _) = s.put(&k, b"2").await.unwrap();
    s.put(&k, b"3").await.unwrap();
    s.compact(r2).await.unwrap();
    let err = s
        .range(RangeRequest::new(KeySpan::key(k.clone())).at_revision(r1))
        .await
        .unwrap_err();
    match err {
        Error::Compacted {
            requested,
            compacted,
        } => assert_eq!((requested, compacted), (r1, r2)),
        other => panic!("expected Compacted, got {other}"),
    }
    assert_eq!(s.status().await.unwrap().compact_revision, r2);
}

pub async fn compact_keeps_state_at_the_compact_revision<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "old"), b"kept").await.unwrap();
    s.put(&key(p, "gone"), b"x").await.unwrap();
    s.delete(KeySpan::key(key(p, "gone"))).await.unwrap();
    let (r4, _) = s.put(&key(p, "b"), b"1").await.unwrap();
    s.put(&key(p, "b"), b"2").await.unwrap();
    s.compact(r4).await.unwrap();
    let at = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))).at_revision(r4))
        .await
        .unwrap();
    let got: Vec<(Vec<u8>, String, i64)> = at
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), text(kv), kv.mod_revision))
        .collect();
    assert_eq!(
        got,
        vec![
            (key(p, "b"), "1".into(), r4),
            (key(p, "old"), "kept".into(), r1)
        ]
    );
    let now = s.get(&key(p, "b")).await.unwrap().unwrap();
    assert_eq!(
        (text(&now), now.version, now.create_revision),
        ("2".into(), 2, r4)
    );
}

pub async fn compact_twice_or_in_the_future_is_an_error<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let (r2, _) = s.put(&key(p, "a"), b"2").await.unwrap();
    assert!(matches!(
        s.compact(r2 + 100).await,
        Err(Error::FutureRevision { .. })
    ));
    s.compact(r2).await.unwrap();
    assert!(matches!(s.compact(r1).await, Err(Error::Compacted { .. })));
    assert!(matches!(s.compact(r2).await, Err(Error::Compacted { .. })));
}

pub async fn history_after_compaction_starts_at_the_compaction_point<S: Store>(s: &S, p: &str) {
    let k = key(p, "h");
    s.put(&k, b"1").await.unwrap();
    let (r2, _) = s.put(&k, b"2").await.unwrap();
    let (r3, _) = s.put(&key(p, "other"), b"x").await.unwrap();
    let (r4, _) = s.put(&k, b"3").await.unwrap();
    s.compact(r3).await.unwrap();
    let history = s.history(&k).await.unwrap();
    let summary: Vec<(i64, String)> = history
        .iter()
        .map(|e| (e.revision(), text(&e.kv)))
        .collect();
    assert_eq!(summary, vec![(r2, "2".into()), (r4, "3".into())]);
}
