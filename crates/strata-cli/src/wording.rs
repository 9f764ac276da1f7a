//! The CLI's words for library errors: which flag or command to use next.
//!
//! Library errors say what went wrong and what to do in the library's terms (give the
//! key the backup was made with, wait for the lock); this module adds the flag that
//! does it here (`--encrypt-secrets KEYFILE`, `--wait SECONDS`), so that no library
//! names a flag of this binary and another frontend can word the same error its way.

/// A hint for the error, naming the flag or command that acts on it.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    if err.chain().any(is_disk_full) {
        return Some(
            "the disk is full: free some space there, then run the same command again \
             (what was written is whole, and a re-run finishes the job)"
                .into(),
        );
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<strata_migrate::Error>() {
            return migrate(e);
        }
        if let Some(e) = cause.downcast_ref::<strata_backup::Error>() {
            return backup(e);
        }
        if let Some(e) = cause.downcast_ref::<strata_ops::Error>() {
            return ops(e);
        }
        if let Some(e) = cause.downcast_ref::<strata_core::Error>() {
            return store(e);
        }
    }
    None
}

/// A full disk, however it surfaced: the OS's ENOSPC, or SQLite's SQLITE_FULL.
fn is_disk_full(cause: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
            return true;
        }
    }
    let text = cause.to_string();
    text.contains("No space left on device") || text.contains("database or disk is full")
}

fn migrate(e: &strata_migrate::Error) -> Option<String> {
    use strata_migrate::Error as E;
    match e {
        E::Locked { .. } => Some("`--wait SECONDS` waits for the lock".into()),
        E::Interrupted { .. } => Some("run `strata migrate up` again to finish".into()),
        E::Stopped { source, .. } => migrate(source),
        E::File { reason, .. } if reason.starts_with("cannot read the migrations folder") => Some(
            "create it with `strata migrate new AREA NAME`, or name another folder with --dir"
                .into(),
        ),
        E::Store { source, .. } => store(source),
        _ => None,
    }
}

fn backup(e: &strata_backup::Error) -> Option<String> {
    use strata_backup::Error as E;
    match e {
        E::NeedKey { .. } => {
            Some("pass --encrypt-secrets KEYFILE with the key the backup was made with".into())
        }
        E::Conflict { .. } => Some("--force overwrites whatever is there".into()),
        E::Refused(text) if text.contains("rebuild (from commit") => {
            let commit = text.split("from commit ").nth(1)?.split(')').next()?;
            Some(format!("--at {commit} finishes the interrupted rebuild"))
        }
        E::Refused(text) if text.starts_with("remote ") && text.contains("pushes to local") => {
            Some("--push takes a local path or a file:// URL".into())
        }
        E::Store { source, .. } => store(source),
        E::Op { source, .. } => ops(source),
        _ => None,
    }
}

fn store(e: &strata_core::Error) -> Option<String> {
    use strata_core::Error as E;
    let text = e.to_string();
    let auth = "give --user and --password, or ETCDCTL_USER and ETCDCTL_PASSWORD";
    match e {
        E::InvalidUrl { reason, .. } if reason.contains("has no password") => {
            Some("give --password or ETCDCTL_PASSWORD".into())
        }
        E::InvalidUrl { reason, .. }
            if reason.contains("needs both the certificate and its key") =>
        {
            Some("a client certificate needs both --cert and --key".into())
        }
        E::InvalidTxn(_) if text.contains("fewer operations per transaction") => {
            Some("--max-txn-ops N sets the server's limit".into())
        }
        E::InvalidTxn(_) if text.contains("refused the request") => {
            Some("--batch N lowers the batch size".into())
        }
        E::Backend { .. } if text.contains(strata_store::sqlite::MISSING) => {
            Some("check the path; --create makes a new, empty store there".into())
        }
        E::InvalidUrl { reason, .. } if reason.contains("an https endpoint") => {
            Some("give the CA with --cacert FILE or ETCDCTL_CACERT".into())
        }
        E::Backend { .. } if text.contains("user and password the cluster accepts") => {
            Some(auth.into())
        }
        E::Backend { .. } if text.contains("authentication is not enabled") => Some(
            "leave out --user and --password (and unset ETCDCTL_USER, ETCDCTL_PASSWORD)".into(),
        ),
        E::Backend { .. } | E::Unavailable { .. } if text.contains("etcd's client port") => Some(
            "name the client URL with --store etcd://HOST:PORT or --endpoints HOST:PORT".into(),
        ),
        _ => None,
    }
}

fn ops(e: &strata_ops::Error) -> Option<String> {
    use strata_ops::Error as E;
    match e {
        E::Store(e) => store(e),
        E::Interrupted { source, .. } => ops(source),
        E::Invalid(text) if text.contains("another mirror of the same name") => {
            Some("--name NAME gives this mirror its own checkpoint".into())
        }
        _ => None,
    }
}
