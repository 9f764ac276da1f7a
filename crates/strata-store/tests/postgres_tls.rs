//! PostgreSQL over TLS, on a throwaway server with `ssl=on` and certificates made by
//! the `openssl` CLI (`PgServer::start_tls`: a CA, a server certificate for `localhost`
//! only, client certificates, and `hostssl … cert` authentication). A subset of the
//! conformance suite and a watch run over `sslmode=verify-full` with a client
//! certificate; every other test is one way a TLS connection can fail, checked by the
//! words of its error: a wrong CA, a wrong host name, a server without TLS, a refused
//! or missing client certificate, unreadable or malformed files, and a server that
//! accepts and never answers. `psql` (over plain TCP) checks what the server saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use strata_core::{KeySpan, Store, WatchRequest};
use strata_store::{PgOptions, PgStore};
use strata_testkit::postgres::{self, SCRAM_PASSWORD, SCRAM_ROLE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "tls{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

async fn connect(url: &str) -> strata_core::Result<PgStore> {
    PgStore::connect(PgOptions::parse(url)?).await
}

/// An error with every source the message does not already hold, as the CLI prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// The error of a connect that must fail.
async fn connect_err(url: &str) -> String {
    match connect(url).await {
        Ok(_) => panic!("connected to {url}, which must fail"),
        Err(e) => chain(&e),
    }
}

/// A store in a fresh schema over `sslmode=verify-full` to `localhost`, authenticated
/// by the client certificate.
async fn verify_full_store() -> PgStore {
    let url = postgres::shared_tls().tls_url("localhost", "verify-full");
    connect(&format!("{url}&schema={}", schema()))
        .await
        .expect("connect over sslmode=verify-full")
}

macro_rules! conformance_over_verify_full {
    ($($module:ident::$case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store = verify_full_store().await;
            strata_core::conformance::$module::$case(&store, concat!("/tls/", stringify!($case), "/"))
                .await;
        }
    )*};
}

conformance_over_verify_full!(
    cases::put_then_get_has_fresh_metadata,
    cases::delete_prefix_deletes_the_subtree_only,
    cases::range_pages_with_continuation_at_one_revision,
    cases::binary_keys_and_values_round_trip,
    cases::read_at_old_revision_sees_old_value,
    cases::history_lists_every_change,
    cases::compact_makes_older_reads_fail,
    cases_txn::txn_writes_share_one_revision,
    cases_txn::txn_failure_branch_runs_when_a_compare_fails,
    cases_txn::cas_increments_are_serialised,
    cases_watch::watch_from_now_sees_puts,
    cases_watch::watch_replays_from_a_past_revision,
    cases_watch::watch_resume_revision_gives_no_gap_and_no_duplicate,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_encrypts_the_pool_and_the_watch_and_sends_the_client_certificate() -> TestResult
{
    let pg = postgres::shared_tls();
    let app = format!("strata_tls_{}", std::process::id());
    let url = format!(
        "{}&schema={}&application_name={app}",
        pg.tls_url("localhost", "verify-full"),
        schema()
    );
    let store = connect(&url).await?;
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::prefix(b"/w/".to_vec()),
            start_revision: 0,
        })
        .await?;
    let (revision, _) = store.put(b"/w/a", b"1").await?;
    let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await?
        .expect("the watch is open")?;
    assert_eq!(batch[0].revision(), revision);
    // Every connection of this store (the pooled ones and the watch's LISTEN) is TLS
    // with our client certificate, as the server reports it.
    let rows = pg.psql(&format!(
        "SELECT DISTINCT s.ssl, s.client_dn, a.query LIKE 'LISTEN%' FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}' ORDER BY 3"
    ));
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        ["t|/CN=postgres|f", "t|/CN=postgres|t"],
        "{rows}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_naming_sslrootcert() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    let (ca, other) = (
        tls.ca.display().to_string(),
        tls.other_ca.display().to_string(),
    );
    // `require` with a root certificate checks the chain, as libpq does.
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = pg.tls_url("localhost", mode).replace(&ca, &other);
        let err = connect_err(&url).await;
        assert!(
            err.contains("the server's certificate is not signed by a CA in sslrootcert")
                && err.contains(&other)
                && err.contains("set sslrootcert (or PGSSLROOTCERT)"),
            "{mode}: {err}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_localhost_does_not_do_for_127_0_0_1() -> TestResult {
    let pg = postgres::shared_tls();
    let err = connect_err(&pg.tls_url("127.0.0.1", "verify-full")).await;
    assert!(
        err.contains("the server's certificate is not valid for host \"127.0.0.1\"")
            && err.contains("it names only localhost")
            && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    // verify-ca checks the chain only.
    let url = format!(
        "{}&schema={}",
        pg.tls_url("127.0.0.1", "verify-ca"),
        schema()
    );
    let store = connect(&url).await?;
    store.put(b"/x", b"1").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_without_checking_the_certificate() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    // Neither the CA nor the host name (127.0.0.1) is checked.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require&sslcert={}&sslkey={}&schema={}",
        pg.port(),
        tls.client_cert.display(),
        tls.client_key.display(),
        schema()
    );
    let store = connect(&url).await?;
    store.put(b"/x", b"1").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_says_the_server_does_not_offer_it() -> TestResult {
    let plain = postgres::shared();
    let base = plain.url(&schema());
    for mode in ["require", "verify-full"] {
        let tls = postgres::shared_tls().tls().expect("TLS files");
        let url = format!("{base}&sslmode={mode}&sslrootcert={}", tls.ca.display());
        let err = connect_err(&url).await;
        assert!(
            err.contains("does not offer TLS")
                && err.contains(&format!("sslmode={mode} requires it"))
                && err.contains("ssl = on"),
            "{mode}: {err}"
        );
    }
    // prefer, the default, falls back to plain TCP.
    connect(&format!("{base}&sslmode=prefer")).await?;
    connect(&base).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_and_allow_fall_back_to_plain_tcp_as_libpq_does() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    let app = format!("strata_prefer_{}", std::process::id());
    let base = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?application_name={app}",
        pg.port()
    );
    // prefer (the default) without a client certificate: the TLS session is refused by
    // `hostssl … cert`, and the retry in plain TCP is let in. With a root certificate
    // that does not match, the handshake fails and plain TCP is tried too. allow starts
    // in plain TCP.
    let urls = [
        format!("{base}&schema={}", schema()),
        format!(
            "{base}&schema={}&sslrootcert={}",
            schema(),
            tls.other_ca.display()
        ),
        format!("{base}&schema={}&sslmode=allow", schema()),
    ];
    let mut open = Vec::new();
    for url in urls {
        let store = connect(&url).await?;
        store.put(b"/x", b"1").await?;
        open.push(store);
    }
    let rows = pg.psql(&format!(
        "SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = '{app}'"
    ));
    assert_eq!(rows.trim(), "f", "{rows}");
    drop(open);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_authentication_needs_a_client_certificate_from_the_servers_ca() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    let url = pg.tls_url("localhost", "verify-full");
    // Without one, the server's hostssl … cert line refuses the connection.
    let without = url.split("&sslcert=").next().expect("a URL");
    let err = connect_err(without).await;
    assert!(err.contains("requires a valid client certificate"), "{err}");
    // One from another CA is refused in the handshake.
    let other = url
        .replace(
            &tls.client_cert.display().to_string(),
            &tls.other_client_cert.display().to_string(),
        )
        .replace(
            &tls.client_key.display().to_string(),
            &tls.other_client_key.display().to_string(),
        );
    let err = connect_err(&other).await;
    assert!(
        err.contains("the server refused this client's certificate") && err.contains("ssl_ca_file"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_tls_binds_the_channel_and_never_shows_the_password() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    // channel_binding=require: SCRAM-SHA-256-PLUS with tls-server-end-point, which the
    // server checks against the hash of its own certificate.
    let url = format!(
        "postgres://{SCRAM_ROLE}:{SCRAM_PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&channel_binding=require&schema={}",
        pg.port(),
        tls.ca.display(),
        schema()
    );
    let opts = PgOptions::parse(&url)?;
    assert!(!format!("{opts:?}").contains(SCRAM_PASSWORD));
    let store = PgStore::connect(opts).await?;
    store.put(b"/x", b"1").await?;
    assert!(!format!("{store:?}").contains(SCRAM_PASSWORD));
    // A failing connect does not show it either.
    let wrong = url.replace(
        &tls.ca.display().to_string(),
        &tls.other_ca.display().to_string(),
    );
    let err = connect_err(&wrong).await;
    assert!(
        err.contains("not signed by a CA") && !err.contains(SCRAM_PASSWORD),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_malformed_files_are_named_and_keys_never_shown() -> TestResult {
    let pg = postgres::shared_tls();
    let tls = pg.tls().expect("TLS files");
    let key_text = std::fs::read_to_string(&tls.client_key)?;
    let key_line = key_text
        .lines()
        .find(|l| !l.starts_with("-----"))
        .expect("a base64 line");
    let url = |root: &std::path::Path, cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            pg.port(),
            root.display(),
            cert.display(),
            key.display()
        )
    };
    let missing = std::path::Path::new("/nonexistent/strata/ca.pem");
    let cases = [
        (
            url(missing, &tls.client_cert, &tls.client_key),
            "cannot read the sslrootcert file /nonexistent/strata/ca.pem",
        ),
        (
            url(&tls.client_key, &tls.client_cert, &tls.client_key),
            &*format!(
                "the sslrootcert file {} holds no certificate",
                tls.client_key.display()
            ),
        ),
        (
            url(&tls.ca, &tls.client_key, &tls.client_key),
            &*format!(
                "the sslcert file {} holds no certificate",
                tls.client_key.display()
            ),
        ),
        (
            url(&tls.ca, &tls.client_cert, &tls.client_cert),
            &*format!(
                "the sslkey file {} holds no unencrypted private key",
                tls.client_cert.display()
            ),
        ),
        (
            url(&tls.ca, &tls.client_cert, &tls.other_client_key),
            &*format!(
                "the private key in sslkey {} does not belong to the certificate in sslcert {}",
                tls.other_client_key.display(),
                tls.client_cert.display()
            ),
        ),
    ];
    for (url, want) in cases {
        let err = connect_err(&url).await;
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(
            !err.contains(key_line) && !err.contains("PRIVATE KEY"),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_gives_up_on_a_server_that_accepts_and_never_answers() -> TestResult {
    // Never accepted: the kernel completes the TCP handshake and nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = silent.local_addr()?.port();
    let started = Instant::now();
    let err = connect_err(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"
    ))
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "gave up after {took:?}"
    );
    assert!(
        err.contains(&format!(
            "no answer from 127.0.0.1:{port} within 2 s (connect_timeout)"
        )) && err.contains("raise connect_timeout"),
        "{err}"
    );
    drop(silent);
    Ok(())
}
