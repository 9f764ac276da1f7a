//! The model check: random op sequences run against a backend and against the
//! in-memory reference ([`crate::mem::MemStore`]); every answer must agree, with
//! revisions compared relative to where each store started.

use std::future::Future;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::TestStore;
use crate::mem::MemStore;
use crate::model::*;
use crate::store::Store;

const NAMES: &[&str] = &["a", "b", "c", "d/e", "d/f", "d/g/h"];

#[derive(Clone, Debug)]
enum ModelOp {
    Put(usize, u8),
    Delete(usize),
    DeletePrefix,
    Get {
        name: usize,
        back: i64,
    },
    Cas {
        name: usize,
        expect_version: i64,
        value: u8,
    },
    CreateIfAbsent(usize, usize),
    ListPrefix {
        limit: i64,
    },
    History(usize),
}

fn op() -> impl Strategy<Value = ModelOp> {
    let name = 0..NAMES.len();
    prop_oneof![
        4 => (name.clone(), any::<u8>()).prop_map(|(n, v)| ModelOp::Put(n, v)),
        2 => name.clone().prop_map(ModelOp::Delete),
        1 => Just(ModelOp::DeletePrefix),
        2 => (name.clone(), 0..6i64).prop_map(|(name, back)| ModelOp::Get { name, back }),
        2 => (name.clone(), 0..4i64, any::<u8>())
            .prop_map(|(name, expect_version, value)| ModelOp::Cas { name, expect_version, value }),
        1 => (name.clone(), name.clone()).prop_map(|(a, b)| ModelOp::CreateIfAbsent(a, b)),
        1 => (0..4i64).prop_map(|limit| ModelOp::ListPrefix { limit }),
        1 => name.prop_map(ModelOp::History),
    ]
}

/// A store's answer with revisions made relative to its starting revision.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Kvs(Vec<(String, Vec<u8>, i64, i64, i64)>, bool),
    Txn(bool, i64),
    Error(String),
    Events(Vec<(EventKind, i64, i64, Vec<u8>)>),
}

fn rel_kvs(kvs: &[KeyValue], base: i64, prefix: &str) -> Vec<(String, Vec<u8>, i64, i64, i64)> {
    kvs.iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key);
            (
                key.strip_prefix(prefix).unwrap_or(&key).to_owned(),
                kv.value.clone(),
                kv.create_revision - base,
                kv.mod_revision - base,
                kv.version,
            )
        })
        .collect()
}

async fn apply<S: Store>(s: &S, prefix: &str, base: i64, op: &ModelOp) -> Answer {
    let k = |i: usize| format!("{prefix}{}", NAMES[i]).into_bytes();
    let txn_answer = |r: crate::error::Result<TxnResponse>| match r {
        Ok(resp) => Answer::Txn(resp.succeeded, resp.revision - base),
        Err(e) => Answer::Error(format!("{e:?}").chars().take(12).collect()),
    };
    match op {
        ModelOp::Put(n, v) => {
            txn_answer(s.txn(Txn::new().and_then([Op::put(k(*n), vec![*v])])).await)
        }
        ModelOp::Delete(n) => txn_answer(
            s.txn(Txn::new().and_then([Op::delete(KeySpan::key(k(*n)))]))
                .await,
        ),
        ModelOp::DeletePrefix => {
            let span = KeySpan::prefix(format!("{prefix}d/").into_bytes());
            txn_answer(s.txn(Txn::new().and_then([Op::delete(span)])).await)
        }
        ModelOp::Get { name, back } => {
            let current = s.status().await.map(|st| st.revision).unwrap_or(base);
            let rev = if *back == 0 {
                0
            } else {
                (current - back).max(base)
            };
            let req = RangeRequest::new(KeySpan::key(k(*name))).at_revision(rev);
            match s.range(req).await {
                Ok(resp) => Answer::Kvs(rel_kvs(&resp.kvs, base, prefix), resp.more),
                Err(e) => Answer::Error(format!("{e:?}").chars().take(12).collect()),
            }
        }
        ModelOp::Cas {
            name,
            expect_version,
            value,
        } => {
            let txn = Txn::new()
                .when([Compare::version(
                    k(*name),
                    CompareOp::Equal,
                    *expect_version,
                )])
                .and_then([Op::put(k(*name), vec![*value])])
                .or_else([Op::get(KeySpan::key(k(*name)))]);
            txn_answer(s.txn(txn).await)
        }
        ModelOp::CreateIfAbsent(a, b) => {
            let mut ops = vec![Op::put(k(*a), "created")];
            if a != b {
                ops.push(Op::put(k(*b), "created"));
            }
            let txn = Txn::new().when([Compare::absent(k(*a))]).and_then(ops);
            txn_answer(s.txn(txn).await)
        }
        ModelOp::ListPrefix { limit } => {
            let req =
                RangeRequest::new(KeySpan::prefix(prefix.as_bytes().to_vec())).with_limit(*limit);
            match s.range(req).await {
                Ok(resp) => Answer::Kvs(rel_kvs(&resp.kvs, base, prefix), resp.more),
                Err(e) => Answer::Error(format!("{e:?}").chars().take(12).collect()),
            }
        }
        ModelOp::History(n) => match s.history(&k(*n)).await {
            Ok(events) => Answer::Events(
                events
                    .iter()
                    .map(|e| {
                        (
                            e.kind,
                            e.revision() - base,
                            e.kv.version,
                            e.kv.value.clone(),
                        )
                    })
                    .collect(),
            ),
            Err(e) => Answer::Error(format!("{e:?}").chars().take(12).collect()),
        },
    }
}

/// Runs the model check with stores from `factory` (an isolated store per case).
pub fn check<S, F, Fut>(factory: F)
where
    S: Store,
    F: Fn(String) -> Fut,
    Fut: Future<Output = TestStore<S>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cases: u32 = std::env::var("STRATA_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let strategy = prop::collection::vec(op(), 1..40);
    runner
        .run(&strategy, |ops| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rt.block_on(async {
                let fixture = factory(format!("model_check_{case}")).await;
                let reference = MemStore::new();
                let (s, prefix) = (&fixture.store, fixture.prefix.as_str());
                // Revisions are compared relative to where each store started.
                let base = s
                    .status()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .revision;
                let ref_base = reference.status().await.unwrap().revision;
                for (i, op) in ops.iter().enumerate() {
                    let want = apply(&reference, prefix, ref_base, op).await;
                    let got = apply(s, prefix, base, op).await;
                    prop_assert_eq!(got, want, "op #{} {:?} disagrees with the reference", i, op);
                }
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("model check failed: {e}"));
}
