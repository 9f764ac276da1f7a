//! `backup watch`: continuous backup, one commit per burst of changes.
//!
//! Owns following the store's changes, the debounce, the periodic check that the store
//! answers, starting over from the last commit after a lost watch or a failed backup,
//! and the status it reports ([`WatchStatus`]): every failure it retries is counted
//! and reported rather than printed. Each commit is made by the same code as
//! `backup run`. A layered keyspace is followed one watch per store, each from the
//! revision the last commit records for it, merged into one stream of bursts.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use strata_core::{Event, KeySpan, Store, WatchRequest};
use tokio::sync::mpsc;

use crate::backup::{commit_changes, last_trailers, push, record, run_in, Changes};
use crate::options::{BackupOptions, BackupReport};
use crate::repo::{Repo, Trailers};
use crate::source::{single, Part, Revisions};
use crate::Error;

/// How `backup watch` runs.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How long changes are gathered after the first one before they are committed.
    pub debounce: Duration,
    /// How often the store is asked for its revision (and the status reported).
    pub check_every: Duration,
}

/// The newest commit of the backup: the store revision it records and when it was
/// made (Unix seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitPoint {
    pub revision: i64,
    pub time: i64,
}

/// How a watch is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchStatus {
    /// The newest commit of the branch, made by this watch or before it started.
    pub last_commit: Option<CommitPoint>,
    /// The store revision the backup holds: the last commit's, or later when the
    /// store was seen unchanged since (0 for a layered keyspace).
    pub revision: i64,
    /// The same per store of a layered keyspace (`""` for one store).
    pub revisions: Revisions,
    /// Commits made since the watch started.
    pub commits: u64,
    /// Failures since the watch started; each was retried.
    pub errors: u64,
    /// Why the last request to the store failed; `None` once one succeeds again
    /// (the store is reachable).
    pub store_error: Option<String>,
    /// Why the last backup or commit failed for another reason (Git, a push);
    /// `None` once one succeeds.
    pub backup_error: Option<String>,
}

impl WatchStatus {
    /// True while the store answers and the last backup succeeded.
    pub fn is_healthy(&self) -> bool {
        self.store_error.is_none() && self.backup_error.is_none()
    }
}

/// What [`watch`] tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum WatchUpdate<'a> {
    /// A backup ran (a commit, or nothing to commit); the status after it.
    Backup {
        report: &'a BackupReport,
        status: &'a WatchStatus,
    },
    /// After each check of the store and each failure.
    Status(&'a WatchStatus),
}

/// The status and the callback, shared by the loop and `follow`.
struct Watching<'a> {
    status: WatchStatus,
    tell: &'a mut dyn FnMut(WatchUpdate<'_>),
}

impl Watching<'_> {
    fn failed(&mut self, e: &Error) {
        self.status.errors += 1;
        match e {
            Error::Store { .. } => self.status.store_error = Some(e.to_string()),
            _ => self.status.backup_error = Some(e.to_string()),
        }
        (self.tell)(WatchUpdate::Status(&self.status));
    }

    fn backed_up(&mut self, repo: &Repo, report: &BackupReport) -> Result<(), Error> {
        self.status.store_error = None;
        self.status.backup_error = None;
        self.status.revision = report.revision;
        self.status.revisions = report.revisions.clone();
        if report.commit.is_some() {
            self.status.commits += 1;
            self.status.last_commit = last_commit(repo)?;
        }
        (self.tell)(WatchUpdate::Backup {
            report,
            status: &self.status,
        });
        Ok(())
    }

    /// Asks each store for its revision and reports the status.
    async fn check<S: Store>(&mut self, parts: &[Part<'_, S>]) {
        self.status.store_error = None;
        for p in parts {
            if let Err(e) = p.store.status().await {
                self.status.errors += 1;
                let e = Error::store(format!("asking {} for its revision", p.label()), e);
                self.status.store_error = Some(e.to_string());
                break;
            }
        }
        (self.tell)(WatchUpdate::Status(&self.status));
    }
}

fn last_commit(repo: &Repo) -> Result<Option<CommitPoint>, Error> {
    Ok(repo.head()?.map(|c| CommitPoint {
        revision: Trailers::parse(c.message().unwrap_or("")).map_or(0, |t| t.revision),
        time: c.time().seconds(),
    }))
}

/// A failure the loop retries: the store's (unless no retry can cure it), or one
/// met while following changes.
fn retried(e: &Error) -> bool {
    match e {
        Error::Store { source, .. } => !source.is_permanent(),
        _ => false,
    }
}

/// `backup watch`: a backup now, then one commit per burst of changes, `debounce`
/// after its first change, until `stop` resolves; returns the last status. After a
/// lost watch or a failed request to the store it starts again from the last
/// committed revision (a full read if that was compacted), with backoff; `report`
/// hears of every backup, every check (each `check_every`) and every failure.
pub async fn watch<S: Store, F: Future<Output = ()>>(
    store: &S,
    opts: &BackupOptions,
    how: &WatchOptions,
    report: &mut dyn FnMut(WatchUpdate<'_>),
    stop: F,
) -> Result<WatchStatus, Error> {
    watch_parts(&single(store), opts, how, report, stop).await
}

/// [`watch`] over several stores (a layered keyspace's): one watch per store from
/// the revision the last commit records for it, each store's events kept only in
/// the spans it holds, each commit recording every store's revision.
pub async fn watch_parts<S: Store, F: Future<Output = ()>>(
    parts: &[Part<'_, S>],
    opts: &BackupOptions,
    how: &WatchOptions,
    report: &mut dyn FnMut(WatchUpdate<'_>),
    stop: F,
) -> Result<WatchStatus, Error> {
    let repo = Repo::open(&opts.repo, true, true)?;
    crate::backup::push_remote(&repo, opts)?;
    tokio::pin!(stop);
    let mut w = Watching {
        status: WatchStatus {
            last_commit: last_commit(&repo)?,
            ..WatchStatus::default()
        },
        tell: report,
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        // A backup is safe to abandon part-way: nothing moves the branch until its
        // commit is complete.
        let ran = tokio::select! {
            ran = run_in(parts, &repo, opts) => ran,
            _ = stop.as_mut() => return Ok(w.status),
        };
        let report = match ran.and_then(|r| push(&repo, opts).map(|()| r)) {
            Ok(report) => report,
            Err(e) if retried(&e) => {
                w.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.as_mut() => return Ok(w.status),
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        backoff = Duration::from_millis(500);
        w.backed_up(&repo, &report)?;
        let mut recorded = report.revisions.clone();
        if report.commit.is_none() {
            if let Some(t) = last_trailers(&repo)? {
                recorded = t.revisions;
            }
        }
        match follow(parts, &repo, opts, recorded, how, &mut w, stop.as_mut()).await {
            Ok(true) => return Ok(w.status),
            Ok(false) => continue,
            Err(e) => {
                w.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.as_mut() => return Ok(w.status),
                }
            }
        }
    }
}

/// One batch of one part's watch, or `None` when that watch ended.
type Arrival = (usize, Option<strata_core::Result<Vec<Event>>>);

/// Opens one watch per part from the revision after `recorded`'s and forwards their
/// batches, tagged with the part, into one channel; the tasks stop when the returned
/// set is dropped.
async fn watch_each<S: Store>(
    parts: &[Part<'_, S>],
    recorded: &Revisions,
) -> Result<(mpsc::Receiver<Arrival>, tokio::task::JoinSet<()>), Error> {
    let (tx, rx) = mpsc::channel(64);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in parts.iter().enumerate() {
        let from = recorded.get(&p.name).copied().unwrap_or(0) + 1;
        let mut watcher = p
            .store
            .watch(WatchRequest {
                span: KeySpan::all(),
                start_revision: from,
            })
            .await
            .map_err(|e| Error::store(format!("watching {}", p.label()), e))?;
        let tx = tx.clone();
        tasks.spawn(async move {
            loop {
                let batch = watcher.next().await;
                let end = batch.is_none();
                if tx.send((i, batch)).await.is_err() || end {
                    return;
                }
            }
        });
    }
    Ok((rx, tasks))
}

/// Follows changes from each part's `recorded + 1`, committing each burst.
/// `Ok(true)` when stopped, `Ok(false)` to start over with a backup (a watch ended).
async fn follow<S: Store>(
    parts: &[Part<'_, S>],
    repo: &Repo,
    opts: &BackupOptions,
    recorded: Revisions,
    how: &WatchOptions,
    w: &mut Watching<'_>,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> Result<bool, Error> {
    let (mut arrivals, _tasks) = watch_each(parts, &recorded).await?;
    let mut pending = Changes::new();
    let mut reached = recorded.clone();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(how.check_every);
    ticker.tick().await;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.as_mut() => {
                if reached != recorded {
                    let report = commit_changes(repo, opts, std::mem::take(&mut pending), &reached).await?;
                    push(repo, opts)?;
                    w.backed_up(repo, &report)?;
                }
                return Ok(true);
            }
            _ = ticker.tick() => w.check(parts).await,
            _ = sleep => {
                let report = commit_changes(repo, opts, std::mem::take(&mut pending), &reached).await?;
                push(repo, opts)?;
                w.backed_up(repo, &report)?;
                deadline = None;
            }
            arrival = arrivals.recv() => match arrival {
                Some((i, Some(Ok(events)))) => {
                    w.status.store_error = None;
                    let part = &parts[i];
                    let at = reached.entry(part.name.clone()).or_default();
                    for e in events {
                        *at = (*at).max(e.revision());
                        if part.spans.iter().any(|s| s.contains(&e.kv.key)) {
                            record(opts, &mut pending, e);
                        }
                    }
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + how.debounce);
                    }
                }
                Some((i, Some(Err(e)))) => {
                    return Err(Error::store(format!("watching {}", parts[i].label()), e))
                }
                Some((_, None)) | None => return Ok(false),
            }
        }
    }
}
