//! Conformance cases for watch: live changes, deletes, replay from the past, prefix
//! filtering, ordering without gaps, resuming, and compaction.

use super::{assert_quiet, key, take_events, text};
use crate::error::Error;
use crate::model::*;
use crate::store::Store;

fn watch_prefix(p: &str, start_revision: i64) -> WatchRequest {
    WatchRequest {
        span: KeySpan::prefix(key(p, "")),
        start_revision,
    }
}

pub async fn watch_from_now_sees_puts<S: Store>(s: &S, p: &str) {
    s.put(&key(p, "before"), b"0").await.unwrap();
    let mut w = s.watch(watch_prefix(p, 0)).await.unwrap();
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let (r2, _) = s.put(&key(p, "a"), b"2").await.unwrap();
    let events = take_events(&mut w, 2).await;
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(
        (
            events[0].revision(),
            text(&events[0].kv),
            events[0].kv.version
        ),
        (r1, "1".into(), 1)
    );
    assert_eq!(
        (
            events[1].revision(),
            text(&events[1].kv),
            events[1].kv.version
        ),
        (r2, "2".into(), 2)
    );
    assert_eq!(events[1].kv.create_revision, r1);
    assert_quiet(&mut w).await;
}

pub async fn watch_sees_deletes_one_event_per_key<S: Store>(s: &S, p: &str) {
    for name in ["d/1", "d/2", "d/3"] {
        s.put(&key(p, name), b"v").await.unwrap();
    }
    let mut w = s.watch(watch_prefix(p, 0)).await.unwrap();
    let (rev, n) = s.delete(KeySpan::prefix(key(p, "d/"))).await.unwrap();
    assert_eq!(n, 3);
    let events = take_events(&mut w, 3).await;
    for (event, name) in events.iter().zip(["d/1", "d/2", "d/3"]) {
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(
            (event.kv.key.clone(), event.revision()),
            (key(p, name), rev)
        );
    }
}

pub async fn watch_replays_from_a_past_revision<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let (r2, _) = s.put(&key(p, "b"), b"2").await.unwrap();
    let (r3, _) = s.delete(KeySpan::key(key(p, "a"))).await.unwrap();
    let mut w = s.watch(watch_prefix(p, r1)).await.unwrap();
    let (r4, _) = s.put(&key(p, "c"), b"3").await.unwrap();
    let events = take_events(&mut w, 4).await;
    let revs: Vec<i64> = events.iter().map(Event::revision).collect();
    assert_eq!(revs, vec![r1, r2, r3, r4]);
    assert_eq!(events[2].kind, EventKind::Delete);
    // Starting in the middle skips what came before.
    let mut w = s.watch(watch_prefix(p, r3)).await.unwrap();
    let events = take_events(&mut w, 2).await;
    assert_eq!(
        events.iter().map(Event::revision).collect::<Vec<_>>(),
        vec![r3, r4]
    );
}

/// Regression: `mem:` replayed a watch with `try_send` into a bounded channel, so a
/// replay longer than the buffer silently lost events. More revisions than any
/// backend's buffer (mem 2,048 batches, SQLite 256, PostgreSQL a 1,024-revision window),
/// each delivered once, in order.
pub async fn watch_replays_more_revisions_than_any_buffer<S: Store>(s: &S, p: &str) {
    const N: usize = 2_500;
    let mut first = 0;
    for i in 0..N {
        let (rev, _) = s
            .put(&key(p, &format!("r/{}", i % 7)), i.to_string().as_bytes())
            .await
            .unwrap();
        if i == 0 {
            first = rev;
        }
    }
    let mut w = s
        .watch(WatchRequest {
            span: KeySpan::prefix(key(p, "r/")),
            start_revision: first,
        })
        .await
        .unwrap();
    let events = take_events(&mut w, N).await;
    let values: Vec<String> = events.iter().map(|e| text(&e.kv)).collect();
    let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert!(
        values == want,
        "events lost or out of order in a replay of {N} revisions"
    );
    assert!(events.windows(2).all(|w| w[0].revision() < w[1].revision()));
}

pub async fn watch_filters_by_prefix<S: Store>(s: &S, p: &str) {
    let mut w = s
        .watch(WatchRequest {
            span: KeySpan::prefix(key(p, "in/")),
            start_revision: 0,
        })
        .await
        .unwrap();
    s.put(&key(p, "out"), b"x").await.unwrap();
    s.put(&key(p, "in"), b"x").await.unwrap();
    s.put(&key(p, "in/yes"), b"x").await.unwrap();
    s.put(&key(p, "inx"), b"x").await.unwrap();
    let events = take_events(&mut w, 1).await;
    assert_eq!(events[0].kv.key, key(p, "in/yes"));
    assert_quiet(&mut w).await;
}

pub async fn watch_txn_events_share_a_revision<S: Store>(s: &S, p: &str) {
    let mut w = s.watch(watch_prefix(p, 0)).await.unwrap();
    let txn = Txn::new().and_then([Op::put(key(p, "x"), "1"), Op::put(key(p, "y"), "2")]);
    let rev = s.txn(txn).await.unwrap().revision;
    let events = take_events(&mut w, 2).await;
    assert!(events.iter().all(|e| e.revision() == rev));
    assert_eq!(events[0].kv.key, key(p, "x"));
    assert_eq!(events[1].kv.key, key(p, "y"));
}

pub async fn watch_delivers_many_changes_in_order<S: Store>(s: &S, p: &str) {
    let mut w = s.watch(watch_prefix(p, 0)).await.unwrap();
    let mut revs = Vec::new();
    for i in 0..200 {
        let name = format!("k{}", i % 7);
        let rev = if i % 5 == 4 {
            s.delete(KeySpan::key(key(p, &name))).await.unwrap().0
        } else {
            s.put(&key(p, &name), i.to_string().as_bytes())
                .await
                .unwrap()
                .0
        };
        if revs.last() != Some(&rev) {
            revs.push(rev);
        }
    }
    let events = take_events(&mut w, revs.len()).await;
    let got: Vec<i64> = events.iter().map(Event::revision).collect();
    assert_eq!(got, revs);
}

pub async fn watch_resume_revision_gives_no_gap_and_no_duplicate<S: Store>(s: &S, p: &str) {
    let mut w = s.watch(watch_prefix(p, 0)).await.unwrap();
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    take_events(&mut w, 1).await;
    let resume = w.resume_revision();
    assert_eq!(resume, r1 + 1);
    drop(w);
    let (r2, _) = s.put(&key(p, "a"), b"2").await.unwrap();
    let (r3, _) = s.put(&key(p, "b"), b"3").await.unwrap();
    let mut w = s.watch(watch_prefix(p, resume)).await.unwrap();
    let events = take_events(&mut w, 2).await;
    assert_eq!(
        events.iter().map(Event::revision).collect::<Vec<_>>(),
        vec![r2, r3]
    );
    assert_quiet(&mut w).await;
}

pub async fn watch_from_compacted_revision_is_an_error<S: Store>(s: &S, p: &str) {
    let (r1, _) = s.put(&key(p, "a"), b"1").await.unwrap();
    let (r2, _) = s.put(&key(p, "a"), b"2").await.unwrap();
    s.compact(r2).await.unwrap();
    let err = match s.watch(watch_prefix(p, r1)).await {
        Err(err) => err,
        // Some backends report it as the first item of the stream.
        Ok(mut w) => match w.next().await {
            Some(Err(err)) => err,
            other => panic!("expected a compaction error, got {other:?}"),
        },
    };
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
    // At the compaction point itself the watch works.
    let (r3, _) = s.put(&key(p, "a"), b"3").await.unwrap();
    let mut w = s.watch(watch_prefix(p, r2)).await.unwrap();
    let events = take_events(&mut w, 2).await;
    assert_eq!(
        events.iter().map(Event::revision).collect::<Vec<_>>(),
        vec![r2, r3]
    );
}
