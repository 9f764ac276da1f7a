//! The guards of destructive operations on the reference store: a prefix delete plan
//! (count, sample, segment crossing, one revision), a delete that never removes what
//! was written after the plan's read, and the compaction plan.

use strata_core::{Capabilities, MemStore, Store};
use strata_ops::guard::{compact_plan, delete_planned, delete_prefix_plan, CONFIRM_ABOVE};

type R = Result<(), Box<dyn std::error::Error>>;

/// A store whose transactions hold `ops` operations and whose pages hold 4 keys, so
/// that plans span several pages and deletes several batches.
fn store(ops: usize) -> MemStore {
    let caps = MemStore::new().capabilities();
    MemStore::with_capabilities(Capabilities {
        max_txn_ops: ops,
        range_page_size: 4,
        ..caps
    })
}

async fn fill(s: &MemStore, prefix: &str, n: usize) -> R {
    for i in 0..n {
        s.put(format!("{prefix}{i:02}").as_bytes(), b"v").await?;
    }
    Ok(())
}

#[tokio::test]
async fn plan_counts_samples_and_sees_segment_crossings() -> R {
    let s = store(128);
    fill(&s, "/sigilgate/k", 12).await?;
    fill(&s, "/sigilgate-old/k", 3).await?;
    let plan = delete_prefix_plan(&s, b"/sigilgate").await?;
    assert_eq!(plan.count, 15);
    assert_eq!(plan.sample.len(), 10);
    assert_eq!(plan.sample[0], b"/sigilgate-old/k00");
    assert!(plan.crosses_segment);
    assert_eq!(plan.segment_count, 2);
    assert_eq!(
        plan.segments,
        vec![b"/sigilgate-old".to_vec(), b"/sigilgate".to_vec()]
    );
    assert!(plan.needs_confirmation());
    assert_eq!(plan.revision, s.status().await?.revision);

    let plan = delete_prefix_plan(&s, b"/sigilgate/").await?;
    assert_eq!(plan.count, 12);
    assert!(!plan.crosses_segment);
    // One segment without a trailing slash is no crossing either.
    let plan = delete_prefix_plan(&s, b"/sigilgate-o").await?;
    assert_eq!((plan.count, plan.crosses_segment), (3, false));
    assert!(!plan.needs_confirmation());
    assert!(CONFIRM_ABOVE >= plan.count);
    Ok(())
}

#[tokio::test]
async fn a_key_written_after_the_plan_is_not_deleted() -> R {
    // Batches of 3: the changed key's batch is redone key by key.
    let s = store(3);
    fill(&s, "/a/k", 8).await?;
    let plan = delete_prefix_plan(&s, b"/a/").await?;
    assert_eq!(plan.count, 8);
    // After the read: one new key, one rewritten, one deleted by someone else.
    s.put(b"/a/new", b"later").await?;
    s.put(b"/a/k03", b"rewritten").await?;
    s.delete(strata_core::KeySpan::key(b"/a/k05".to_vec()))
        .await?;
    let report = delete_planned(&s, &plan).await?;
    assert_eq!(report.deleted, 6);
    assert_eq!(report.already_gone, 1);
    assert_eq!(report.changed, vec![b"/a/k03".to_vec()]);
    assert_eq!(report.revision, s.status().await?.revision);
    let left: Vec<Vec<u8>> = s
        .range(strata_core::RangeRequest::new(
            strata_core::KeySpan::prefix(b"/a/".to_vec()),
        ))
        .await?
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, vec![b"/a/k03".to_vec(), b"/a/new".to_vec()]);
    Ok(())
}

#[tokio::test]
async fn a_plan_that_fits_one_transaction_is_deleted_at_one_revision() -> R {
    let s = store(128);
    fill(&s, "/b/", 20).await?;
    let before = s.status().await?.revision;
    let plan = delete_prefix_plan(&s, b"/b/").await?;
    let report = delete_planned(&s, &plan).await?;
    assert_eq!(report.deleted, 20);
    assert_eq!(report.revision, before + 1);
    // An empty plan deletes nothing and keeps the revision.
    let plan = delete_prefix_plan(&s, b"/b/").await?;
    assert_eq!(plan.count, 0);
    assert_eq!(delete_planned(&s, &plan).await?.revision, before + 1);
    Ok(())
}

#[tokio::test]
async fn compact_plan_counts_the_revisions_that_go() -> R {
    let s = store(128);
    fill(&s, "/c/", 9).await?; // revisions 2..=10
    let plan = compact_plan(&s, 6).await?;
    assert_eq!(plan.dropped_revisions, 5);
    assert_eq!(plan.current_revision, 10);
    s.compact(6).await?;
    assert_eq!(compact_plan(&s, 8).await?.dropped_revisions, 2);
    // At or below the compaction point: done already, nothing drops.
    let again = compact_plan(&s, 6).await?;
    assert!(again.is_done() && again.dropped_revisions == 0);
    assert!(compact_plan(&s, 5).await?.is_done());
    assert!(!compact_plan(&s, 8).await?.is_done());
    assert!(compact_plan(&s, 11).await.is_err());
    Ok(())
}
