//! Conformance cases for transactions: atomicity, compares, branches, validation and
//! compare-and-swap loops.

use super::{key, text};
use crate::error::Error;
use crate::model::*;
use crate::store::Store;

fn put(k: Vec<u8>, v: &str) -> Op {
    Op::put(k, v)
}

pub async fn txn_writes_share_one_revision<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "c"), b"old").await.unwrap();
    let txn = Txn::new().and_then([
        put(key(p, "a"), "1"),
        put(key(p, "b"), "2"),
        Op::delete(KeySpan::key(key(p, "c"))),
    ]);
    let resp = s.txn(txn).await.unwrap();
    assert!(resp.succeeded);
    let a = s.get(&key(p, "a")).await.unwrap().unwrap();
    let b = s.get(&key(p, "b")).await.unwrap().unwrap();
    assert_eq!(
        (a.mod_revision, b.mod_revision),
        (resp.revision, resp.revision)
    );
    assert_eq!(s.get(&key(p, "c")).await.unwrap(), None);
    let history = s.history(&key(p, "c")).await.unwrap();
    assert_eq!(history.last().unwrap().revision(), resp.revision);
}

pub async fn txn_success_branch_runs_when_compares_hold<S: Store>(s: &S, p: &str) {
    let (r, _) = s.put(&key(p, "k"), b"v1").await.unwrap();
    let txn = Txn::new()
        .when([
            Compare::value(key(p, "k"), CompareOp::Equal, "v1"),
            Compare::mod_revision(key(p, "k"), CompareOp::Equal, r),
        ])
        .and_then([put(key(p, "k"), "v2")])
        .or_else([put(key(p, "failed"), "yes")]);
    let resp = s.txn(txn).await.unwrap();
    assert!(resp.succeeded);
    assert_eq!(text(&s.get(&key(p, "k")).await.unwrap().unwrap()), "v2");
    assert_eq!(s.get(&key(p, "failed")).await.unwrap(), None);
}

pub async fn txn_failure_branch_runs_when_a_compare_fails<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "k"), b"v1").await.unwrap();
    let txn = Txn::new()
        .when([
            Compare::value(key(p, "k"), CompareOp::Equal, "v1"),
            Compare::version(key(p, "k"), CompareOp::Equal, 7),
        ])
        .and_then([put(key(p, "k"), "v2")])
        .or_else([
            put(key(p, "failed"), "yes"),
            Op::get(KeySpan::key(key(p, "k"))),
        ]);
    let resp = s.txn(txn).await.unwrap();
    assert!(!resp.succeeded);
    assert_eq!(text(&s.get(&key(p, "k")).await.unwrap().unwrap()), "v1");
    assert_eq!(
        text(&s.get(&key(p, "failed")).await.unwrap().unwrap()),
        "yes"
    );
    match &resp.responses[1] {
        OpResponse::Range(r) => assert_eq!(text(&r.kvs[0]), "v1"),
        other => panic!("expected a range response, got {other:?}"),
    }
}

pub async fn txn_compare_absent_creates_once<S: Store>(s: &S, p: &str) {
    let create = || {
        Txn::new()
            .when([Compare::absent(key(p, "obj/id"))])
            .and_then([put(key(p, "obj/id"), "1"), put(key(p, "obj/name"), "n")])
    };
    assert!(s.txn(create()).await.unwrap().succeeded);
    assert!(!s.txn(create()).await.unwrap().succeeded);
    assert_eq!(s.get(&key(p, "obj/id")).await.unwrap().unwrap().version, 1);
}

pub async fn txn_value_compare_on_missing_key_is_false<S: Store>(s: &S, p: &str) {
    for op in [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::Less,
    ] {
        let txn = Txn::new()
            .when([Compare::value(key(p, "missing"), op, "x")])
            .and_then([put(key(p, "w"), "1")]);
        assert!(
            !s.txn(txn).await.unwrap().succeeded,
            "{op:?} on a missing key must fail"
        );
    }
    assert_eq!(s.get(&key(p, "w")).await.unwrap(), None);
}

pub async fn txn_compare_version_and_revisions<S: Store>(s: &S, p: &str) {
    let k = key(p, "k");
    let (r1, _) = s.put(&k, b"a").await.unwrap();
    let (r2, _) = s.put(&k, b"b").await.unwrap();
    let cases = [
        (Compare::version(k.clone(), CompareOp::Equal, 2), true),
        (Compare::version(k.clone(), CompareOp::Greater, 1), true),
        (Compare::version(k.clone(), CompareOp::Less, 2), false),
        (Compare::version(k.clone(), CompareOp::NotEqual, 2), false),
        (
            Compare::create_revision(k.clone(), CompareOp::Equal, r1),
            true,
        ),
        (
            Compare::create_revision(k.clone(), CompareOp::Equal, r2),
            false,
        ),
        (Compare::mod_revision(k.clone(), CompareOp::Equal, r2), true),
        (Compare::mod_revision(k.clone(), CompareOp::Less, r2), false),
        (
            Compare::mod_revision(k.clone(), CompareOp::Greater, r1),
            true,
        ),
        (Compare::value(k.clone(), CompareOp::Greater, "a"), true),
        (Compare::value(k.clone(), CompareOp::Less, "b"), false),
        (
            Compare::version(key(p, "missing"), CompareOp::Equal, 0),
            true,
        ),
        (
            Compare::mod_revision(key(p, "missing"), CompareOp::Equal, 0),
            true,
        ),
    ];
    for (compare, expected) in cases {
        let resp = s.txn(Txn::new().when([compare.clone()])).await.unwrap();
        assert_eq!(resp.succeeded, expected, "{compare:?}");
    }
}

pub async fn txn_range_sees_earlier_write_in_same_txn<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "gone"), b"x").await.unwrap();
    let txn = Txn::new().and_then([
        put(key(p, "new"), "fresh"),
        Op::delete(KeySpan::key(key(p, "gone"))),
        Op::get(KeySpan::prefix(key(p, ""))),
    ]);
    let resp = s.txn(txn).await.unwrap();
    match &resp.responses[2] {
        OpResponse::Range(r) => {
            assert_eq!(r.kvs.len(), 1);
            assert_eq!(
                (text(&r.kvs[0]), r.kvs[0].mod_revision),
                ("fresh".into(), resp.revision)
            );
        }
        other => panic!("expected a range response, got {other:?}"),
    }
}

pub async fn txn_rejects_duplicate_put_and_writes_nothing<S: Store>(s: &S, p: &str) {
    let txn = Txn::new().and_then([
        put(key(p, "a"), "1"),
        put(key(p, "b"), "1"),
        put(key(p, "a"), "2"),
    ]);
    let err = s.txn(txn).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTxn(_)), "{err}");
    assert!(err.to_string().contains(&format!("{p}a")), "{err}");
    assert_eq!(s.get(&key(p, "b")).await.unwrap(), None);
}

pub async fn txn_over_op_limit_is_refused_and_writes_nothing<S: Store>(s: &S, p: &str) {
    let limit = s.capabilities().max_txn_ops;
    let ops = (0..=limit).map(|i| put(key(p, &format!("k{i}")), "v"));
    let err = s.txn(Txn::new().and_then(ops)).await.unwrap_err();
    match &err {
        Error::TooManyOps { ops, limit: l, .. } => assert_eq!((*ops, *l), (limit + 1, limit)),
        other => panic!("expected TooManyOps, got {other}"),
    }
    let left = s
        .range(RangeRequest::new(KeySpan::prefix(key(p, ""))).count_only())
        .await
        .unwrap();
    assert_eq!(left.count, 0);
    // Exactly at the limit is fine.
    let ops = (0..limit).map(|i| put(key(p, &format!("k{i}")), "v"));
    s.txn(Txn::new().and_then(ops)).await.unwrap();
}

pub async fn txn_delete_returns_prev_kvs<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "d/1"), b"one").await.unwrap();
    s.put(&key(p, "d/2"), b"two").await.unwrap();
    let txn = Txn::new().and_then([Op::Delete {
        span: KeySpan::prefix(key(p, "d/")),
        prev_kv: true,
    }]);
    let resp = s.txn(txn).await.unwrap();
    match &resp.responses[0] {
        OpResponse::Delete { deleted, prev_kvs } => {
            assert_eq!(*deleted, 2);
            let values: Vec<String> = prev_kvs.iter().map(text).collect();
            assert_eq!(values, vec!["one", "two"]);
        }
        other => panic!("expected a delete response, got {other:?}"),
    }
}

pub async fn cas_increments_are_serialised<S: Store>(s: &S, p: &str) {
    let k = key(p, "counter");
    s.put(&k, b"0").await.unwrap();
    let mut successes = 0;
    for _ in 0..20 {
        let current = s.get(&k).await.unwrap().unwrap();
        let n: i64 = text(&current).parse().unwrap();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                current.mod_revision,
            )])
            .and_then([Op::put(k.clone(), (n + 1).to_string())]);
        if s.txn(txn).await.unwrap().succeeded {
            successes += 1;
        }
        // A CAS on a stale revision must fail.
        let stale = Txn::new()
            .when([Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                current.mod_revision,
            )])
            .and_then([Op::put(k.clone(), "clobbered")]);
        assert!(!s.txn(stale).await.unwrap().succeeded);
    }
    let last = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (text(&last), last.version),
        (successes.to_string(), successes + 1)
    );
}

pub async fn cad_deletes_only_the_expected_version<S: Store>(s: &S, p: &str) {
    let k = key(p, "lock");
    s.put(&k, b"owner-1").await.unwrap();
    s.put(&k, b"owner-2").await.unwrap();
    let cad = |version| {
        Txn::new()
            .when([Compare::version(k.clone(), CompareOp::Equal, version)])
            .and_then([Op::delete(KeySpan::key(k.clone()))])
    };
    assert!(!s.txn(cad(1)).await.unwrap().succeeded);
    assert!(s.get(&k).await.unwrap().is_some());
    assert!(s.txn(cad(2)).await.unwrap().succeeded);
    assert!(s.get(&k).await.unwrap().is_none());
}

/// Leases: on a backend that has them, a key attached to one lives while it is kept
/// alive and goes when it is revoked; elsewhere no lease is granted and a put that
/// names one is refused, writing nothing.
pub async fn lease_keys_go_with_their_lease_or_are_refused<S: Store>(s: &S, p: &str) {
    let ttl = std::time::Duration::from_secs(5);
    let granted = s.lease_grant(ttl).await.unwrap();
    if !s.capabilities().leases {
        assert_eq!(granted, None);
        let err = s
            .txn(Txn::new().and_then([Op::put_with_lease(key(p, "l"), "v", 7)]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTxn(_)), "{err}");
        assert!(err.to_string().contains("has no leases"), "{err}");
        assert_eq!(s.get(&key(p, "l")).await.unwrap(), None);
        return;
    }
    let lease = granted.expect("a backend with leases grants one");
    s.txn(Txn::new().and_then([
        Op::put_with_lease(key(p, "l"), "v", lease),
        put(key(p, "plain"), "v"),
    ]))
    .await
    .unwrap();
    assert!(s.lease_keep_alive(lease).await.unwrap());
    assert_eq!(text(&s.get(&key(p, "l")).await.unwrap().unwrap()), "v");
    s.lease_revoke(lease).await.unwrap();
    assert_eq!(s.get(&key(p, "l")).await.unwrap(), None);
    assert!(s.get(&key(p, "plain")).await.unwrap().is_some());
    assert!(!s.lease_keep_alive(lease).await.unwrap());
    // Revoking what is gone is not an error: its keys are gone, as asked.
    s.lease_revoke(lease).await.unwrap();
}
