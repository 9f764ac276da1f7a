//! The backend conformance suite: etcd v3 semantics, checked case by case and by
//! random op sequences compared against the in-memory reference model.
//!
//! A backend runs the whole suite with one macro line in a test file:
//!
//! ```ignore
//! strata_core::conformance_suite!(shared: my_store, isolated: my_isolated_store);
//! ```
//!
//! `shared(name)` returns a [`TestStore`] on which the test works under its own key
//! prefix; other tests may write to the same store at the same time, so these cases
//! only assert on revisions within one response or relative to their own keys.
//! `isolated(name)` returns a store nobody else writes to while the test holds it:
//! cases that check exact revision arithmetic, compaction, and the model check run
//! there. For `mem:` and SQLite both are simply a fresh store.

pub mod cases;
pub mod cases_txn;
pub mod cases_watch;
pub mod model;

use std::any::Any;
use std::time::Duration;

use crate::model::{Event, KeyValue};
use crate::store::{Store, Watcher};

/// A store handed to one conformance case, with the key prefix the case must use and
/// whatever must stay alive while it runs (a temp dir, a server lock).
pub struct TestStore<S> {
    pub store: S,
    pub prefix: String,
    pub keep: Box<dyn Any + Send + Sync>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for TestStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<S: Store> TestStore<S> {
    pub fn new(store: S, prefix: impl Into<String>, keep: impl Any + Send + Sync) -> Self {
        TestStore {
            store,
            prefix: prefix.into(),
            keep: Box::new(keep),
        }
    }
}

/// The key `prefix` + `name` as bytes.
pub fn key(prefix: &str, name: &str) -> Vec<u8> {
    format!("{prefix}{name}").into_bytes()
}

/// Collects exactly `n` events from a watcher, failing the test after 10 s.
pub async fn take_events(watcher: &mut Watcher, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < n {
        let batch = tokio::time::timeout_at(deadline, watcher.next())
            .await
            .unwrap_or_else(|_| {
                panic!("timed out waiting for watch events: got {events:?}, want {n}")
            });
        match batch {
            Some(Ok(batch)) => events.extend(batch),
            Some(Err(e)) => panic!("watch failed: {e}"),
            None => panic!("watch ended after {events:?}"),
        }
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// Asserts that no further event arrives within a short while.
pub async fn assert_quiet(watcher: &mut Watcher) {
    if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(300), watcher.next()).await
    {
        panic!("unexpected watch event: {batch:?}");
    }
}

/// `kv.value` as text, for assertions.
pub fn text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

/// Generates one `#[tokio::test]` per conformance case plus the model check.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(shared: $factory, isolated: $factory);
    };
    (shared: $shared:path, isolated: $isolated:path) => {
        $crate::__conformance_tests!($shared, $isolated;
            shared: [
                get_missing_key_is_none, put_then_get_has_fresh_metadata,
                put_on_existing_key_bumps_version_and_mod_revision, put_returns_prev_kv,
                delete_then_put_restarts_version, delete_returns_count_and_missing_is_zero,
                delete_prefix_deletes_the_subtree_only, delete_half_open_range,
                range_prefix_is_sorted_bytewise, range_limit_sets_more,
                range_pages_with_continuation_at_one_revision, range_keys_only,
                range_count_only, range_empty_or_inverted_span,
                binary_keys_and_values_round_trip, empty_value_is_a_value,
                odd_path_keys_round_trip, value_at_size_limit_and_over, one_key_rule_on_every_backend,
                read_at_old_revision_sees_old_value, read_at_old_revision_sees_deleted_key,
                read_before_creation_is_empty, read_in_the_future_is_an_error,
                history_lists_every_change,
                txn_writes_share_one_revision, txn_success_branch_runs_when_compares_hold,
                txn_failure_branch_runs_when_a_compare_fails, txn_compare_absent_creates_once,
                txn_value_compare_on_missing_key_is_false, txn_compare_version_and_revisions,
                txn_range_sees_earlier_write_in_same_txn, txn_rejects_duplicate_put_and_writes_nothing,
                txn_over_op_limit_is_refused_and_writes_nothing, txn_delete_returns_prev_kvs,
                lease_keys_go_with_their_lease_or_are_refused,
                cas_increments_are_serialised, cad_deletes_only_the_expected_version,
                watch_from_now_sees_puts, watch_sees_deletes_one_event_per_key,
                watch_replays_from_a_past_revision, watch_replays_more_revisions_than_any_buffer,
                watch_filters_by_prefix,
                watch_txn_events_share_a_revision, watch_delivers_many_changes_in_order,
                watch_resume_revision_gives_no_gap_and_no_duplicate
            ];
            isolated: [
                empty_txn_and_noop_writes_do_not_bump_revision,
                put_with_same_value_still_bumps_revision, status_reports_revision,
                compact_makes_older_reads_fail, compact_keeps_state_at_the_compact_revision,
                compact_twice_or_in_the_future_is_an_error, watch_from_compacted_revision_is_an_error,
                history_after_compaction_starts_at_the_compaction_point
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($shared:path, $isolated:path; shared: [$($s:ident),* $(,)?]; isolated: [$($i:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $s() {
                let fixture = $shared(stringify!($s)).await;
                $crate::conformance::__run_case!(fixture, $s);
            }
        )*
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $i() {
                let fixture = $isolated(stringify!($i)).await;
                $crate::conformance::__run_case!(fixture, $i);
            }
        )*
        #[test]
        fn model_check_against_reference() {
            $crate::conformance::model::check(|name: String| async move { $isolated(&name).await });
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __run_case {
    ($fixture:ident, $name:ident) => {{
        use $crate::conformance::{cases::*, cases_txn::*, cases_watch::*};
        $name(&$fixture.store, &$fixture.prefix).await;
    }};
}
#[doc(hidden)]
pub use crate::__run_case;
