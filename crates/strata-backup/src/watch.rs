//! `backup watch`: continuous backup, one commit per burst of changes.
//!
//! Owns following the store's changes, the debounce, and starting over from the last
//! commit after a lost watch; each commit is made by the same code as `backup run`.

use std::future::Future;
use std::time::Duration;

use strata_core::{KeySpan, Store, WatchRequest};

use crate::backup::{commit_changes, last_trailers, push, record, run_in, Changes};
use crate::options::{BackupOptions, BackupReport};
use crate::repo::Repo;
use crate::Error;

/// `backup watch`: a backup now, then one commit per burst of changes, `debounce`
/// after its first change, until `stop` resolves. After a lost watch it starts again
/// from the last committed revision (a full read if that was compacted).
pub async fn watch<S: Store, F: Future<Output = ()>>(
    store: &S,
    opts: &BackupOptions,
    debounce: Duration,
    on_commit: &mut dyn FnMut(&BackupReport),
    stop: F,
) -> Result<(), Error> {
    let repo = Repo::open(&opts.repo, true, true)?;
    crate::backup::push_remote(&repo, opts)?;
    tokio::pin!(stop);
    loop {
        let report = run_in(store, &repo, opts).await?;
        push(&repo, opts)?;
        on_commit(&report);
        let mut recorded = report.revision;
        if report.commit.is_none() {
            recorded = last_trailers(&repo)?.map_or(report.revision, |t| t.revision);
        }
        let watched = follow(
            store,
            &repo,
            opts,
            recorded,
            debounce,
            on_commit,
            stop.as_mut(),
        )
        .await;
        match watched {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(e) => {
                tracing_note(&format!(
                    "watch interrupted: {e}; resuming from the last commit"
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.as_mut() => return Ok(()),
                }
            }
        }
    }
}

fn tracing_note(text: &str) {
    eprintln!("{text}");
}

/// Follows changes from `recorded + 1`, committing each burst. `Ok(true)` when
/// stopped, `Ok(false)` to start over with a backup (the watch ended).
async fn follow<S: Store>(
    store: &S,
    repo: &Repo,
    opts: &BackupOptions,
    recorded: i64,
    debounce: Duration,
    on_commit: &mut dyn FnMut(&BackupReport),
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<bool, Error> {
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::all(),
            start_revision: recorded + 1,
        })
        .await
        .map_err(|e| Error::store("watching the store", e))?;
    let mut pending = Changes::new();
    let mut last_revision = recorded;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.as_mut() => {
                if last_revision > recorded {
                    let report = commit_changes(repo, opts, std::mem::take(&mut pending), last_revision).await?;
                    push(repo, opts)?;
                    on_commit(&report);
                }
                return Ok(true);
            }
            _ = sleep => {
                let report = commit_changes(repo, opts, std::mem::take(&mut pending), last_revision).await?;
                push(repo, opts)?;
                on_commit(&report);
                deadline = None;
            }
            batch = watcher.next() => match batch {
                Some(Ok(events)) => {
                    for e in events {
                        last_revision = last_revision.max(e.revision());
                        record(opts, &mut pending, e);
                    }
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + debounce);
                    }
                }
                Some(Err(e)) => return Err(Error::store("watching the store", e)),
                None => return Ok(false),
            }
        }
    }
}
