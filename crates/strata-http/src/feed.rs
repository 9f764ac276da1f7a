//! The feeds: what `mirror` and `backup watch` report through their callbacks
//! ([`MirrorStatus`], [`WatchUpdate`]), turned into metrics and health.
//!
//! Owns the metric names and their help text, and the rule for health: healthy while
//! the last cycle succeeded and the source store answers; otherwise failing with a
//! reason that names the store, its URL shown as [`strata_store::redact`] gives it.
//! The loops and their retries are the libraries'; serving is [`crate::server`].

use strata_backup::{WatchStatus, WatchUpdate};
use strata_ops::mirror::MirrorStatus;

use crate::health::{Health, Monitor};
use crate::registry::{Counter, Gauge};

/// A store as messages name it: the URL without credentials, and the URL itself so
/// that a message quoting it can be cleaned.
#[derive(Debug)]
struct Label {
    url: String,
    shown: String,
}

impl Label {
    fn new(url: &str) -> Self {
        Label {
            url: url.to_owned(),
            shown: strata_store::redact(url),
        }
    }

    /// `message`, with the full URL (should it quote it) replaced by the shown one.
    fn clean(&self, message: &str) -> String {
        if self.url.is_empty() || self.url == self.shown {
            message.to_owned()
        } else {
            message.replace(&self.url, &self.shown)
        }
    }
}

fn flag(up: bool) -> f64 {
    if up {
        1.0
    } else {
        0.0
    }
}

/// The metrics and health of `strata mirror`.
#[derive(Debug)]
pub struct MirrorFeed {
    applied: Gauge,
    source: Gauge,
    lag_revisions: Gauge,
    lag_seconds: Gauge,
    changes: Counter,
    copied: Counter,
    errors: Counter,
    source_up: Gauge,
    health: Health,
    from: Label,
    to: Label,
}

impl MirrorFeed {
    /// Registers the mirror's metrics in `monitor`; `from` and `to` are the stores'
    /// URLs (shown without credentials). Health starts failing until the first report.
    pub fn new(monitor: &Monitor, from: &str, to: &str) -> Self {
        let r = &monitor.registry;
        let (from, to) = (Label::new(from), Label::new(to));
        monitor.health.set_failing(&format!(
            "starting: the mirror from {} to {} has not reported yet",
            from.shown, to.shown
        ));
        MirrorFeed {
            applied: r.gauge(
                "strata_mirror_applied_revision",
                "The last source revision applied to the target.",
            ),
            source: r.gauge(
                "strata_mirror_source_revision",
                "The newest source revision the mirror knows of.",
            ),
            lag_revisions: r.gauge(
                "strata_mirror_lag_revisions",
                "Source revisions not yet applied to the target.",
            ),
            lag_seconds: r.gauge(
                "strata_mirror_lag_seconds",
                "How long the target has been behind the source, in seconds (0 when caught up).",
            ),
            changes: r.counter(
                "strata_mirror_changes_applied_total",
                "Changes (puts and deletes) applied to the target since the process started.",
            ),
            copied: r.counter(
                "strata_mirror_keys_copied_total",
                "Keys written by full copies (the first one, or after the source compacted past the checkpoint).",
            ),
            errors: r.counter(
                "strata_mirror_errors_total",
                "Failed requests to either store since the process started; each was retried.",
            ),
            source_up: r.gauge(
                "strata_mirror_source_up",
                "1 while the source store answers, 0 when the last request to it failed.",
            ),
            health: monitor.health.clone(),
            from,
            to,
        }
    }

    /// Takes in one status report.
    pub fn observe(&self, s: &MirrorStatus) {
        self.applied.set(s.applied_revision as f64);
        self.source.set(s.source_revision as f64);
        self.lag_revisions.set(s.lag_revisions as f64);
        self.lag_seconds.set(s.lag_seconds);
        self.changes.set_total(s.changes_applied);
        self.copied.set_total(s.copied);
        self.errors.set_total(s.errors);
        self.source_up.set(flag(s.source_error.is_none()));
        match (&s.source_error, &s.target_error) {
            (Some(e), _) => self.health.set_failing(&format!(
                "the source store {} does not answer: {}",
                self.from.shown,
                self.from.clean(e)
            )),
            (None, Some(e)) => self.health.set_failing(&format!(
                "writing to the target store {} fails: {}",
                self.to.shown,
                self.to.clean(e)
            )),
            (None, None) => self.health.set_ok(),
        }
    }
}

/// The metrics and health of `strata backup watch`.
#[derive(Debug)]
pub struct BackupFeed {
    commit_revision: Gauge,
    commit_time: Gauge,
    revision: Gauge,
    commits: Counter,
    errors: Counter,
    source_up: Gauge,
    health: Health,
    store: Label,
}

impl BackupFeed {
    /// Registers the backup's metrics in `monitor`; `store` is the backed-up store's
    /// URL (shown without credentials). Health starts failing until the first backup.
    pub fn new(monitor: &Monitor, store: &str) -> Self {
        let r = &monitor.registry;
        let store = Label::new(store);
        monitor.health.set_failing(&format!(
            "starting: the first backup of {} has not finished",
            store.shown
        ));
        BackupFeed {
            commit_revision: r.gauge(
                "strata_backup_last_commit_revision",
                "The store revision that the newest commit of the backup records (0 before the first).",
            ),
            commit_time: r.gauge(
                "strata_backup_last_commit_timestamp_seconds",
                "When the newest commit of the backup was made, in Unix seconds (0 before the first).",
            ),
            revision: r.gauge(
                "strata_backup_revision",
                "The store revision the backup holds: the last commit's, or later when the store was seen unchanged since.",
            ),
            commits: r.counter(
                "strata_backup_commits_total",
                "Commits made since the process started.",
            ),
            errors: r.counter(
                "strata_backup_errors_total",
                "Failures since the process started (the store not answering, a lost watch, a failed commit); each was retried.",
            ),
            source_up: r.gauge(
                "strata_backup_source_up",
                "1 while the backed-up store answers, 0 when the last request to it failed.",
            ),
            health: monitor.health.clone(),
            store,
        }
    }

    /// Takes in one update of the watch.
    pub fn observe(&self, update: WatchUpdate<'_>) {
        let s: &WatchStatus = match update {
            WatchUpdate::Backup { status, .. } | WatchUpdate::Status(status) => status,
        };
        if let Some(c) = s.last_commit {
            self.commit_revision.set(c.revision as f64);
            self.commit_time.set(c.time as f64);
        }
        self.revision.set(s.revision as f64);
        self.commits.set_total(s.commits);
        self.errors.set_total(s.errors);
        self.source_up.set(flag(s.store_error.is_none()));
        match (&s.store_error, &s.backup_error) {
            (Some(e), _) => self.health.set_failing(&format!(
                "the store {} does not answer: {}",
                self.store.shown,
                self.store.clean(e)
            )),
            (None, Some(e)) => self.health.set_failing(&format!(
                "the last backup of {} failed: {}",
                self.store.shown,
                self.store.clean(e)
            )),
            // A status with no failure comes only after a backup has run (a check
            // follows one; a failed first backup sets an error).
            (None, None) => self.health.set_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_health_names_the_failing_store_without_its_password() {
        let monitor = Monitor::new();
        let url = "postgres://app:s3cret@db:5432/meta";
        let feed = MirrorFeed::new(&monitor, "etcd://127.0.0.1:2379", url);
        assert!(monitor.health.get().unwrap_err().starts_with("starting"));
        let mut status = MirrorStatus {
            applied_revision: 7,
            source_revision: 9,
            lag_revisions: 2,
            errors: 3,
            target_error: Some(format!("cannot reach {url}")),
            ..MirrorStatus::default()
        };
        feed.observe(&status);
        let reason = monitor.health.get().unwrap_err();
        assert!(reason.contains("postgres://app@db:5432/meta"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");
        let text = monitor.registry.render();
        for line in [
            "strata_mirror_lag_revisions 2\n",
            "strata_mirror_errors_total 3\n",
            "strata_mirror_source_up 1\n",
            "# TYPE strata_mirror_errors_total counter\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        status.source_error = Some("connection refused".into());
        feed.observe(&status);
        let reason = monitor.health.get().unwrap_err();
        assert!(
            reason.starts_with("the source store etcd://127.0.0.1:2379"),
            "{reason}"
        );
        assert!(monitor
            .registry
            .render()
            .contains("strata_mirror_source_up 0\n"));
        feed.observe(&MirrorStatus::default());
        assert_eq!(monitor.health.get(), Ok(()));
    }

    #[test]
    fn backup_health_turns_ok_with_a_backup_and_fails_while_the_store_does_not_answer() {
        let monitor = Monitor::new();
        let feed = BackupFeed::new(&monitor, "etcd://127.0.0.1:2379");
        let mut status = WatchStatus {
            last_commit: Some(strata_backup::CommitPoint {
                revision: 12,
                time: 1_700_000_000,
            }),
            revision: 12,
            commits: 1,
            ..WatchStatus::default()
        };
        let report = strata_backup::BackupReport::default();
        feed.observe(WatchUpdate::Backup {
            report: &report,
            status: &status,
        });
        assert_eq!(monitor.health.get(), Ok(()));
        let text = monitor.registry.render();
        assert!(
            text.contains("strata_backup_last_commit_revision 12\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_backup_last_commit_timestamp_seconds 1700000000\n"),
            "{text}"
        );
        status.store_error = Some("unavailable".into());
        status.errors = 1;
        feed.observe(WatchUpdate::Status(&status));
        let reason = monitor.health.get().unwrap_err();
        assert!(
            reason.contains("etcd://127.0.0.1:2379") && reason.contains("unavailable"),
            "{reason}"
        );
        assert!(monitor
            .registry
            .render()
            .contains("strata_backup_errors_total 1\n"));
    }
}
