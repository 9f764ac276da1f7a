//! A throwaway PostgreSQL server: `initdb` into a temp dir, `postgres` on a free
//! 127.0.0.1 port with trust authentication, under the same watchdog as etcd so it
//! stops with the test process. Binaries come from `/usr/lib/postgresql/15/bin` or
//! PATH. PostgreSQL refuses to run as root: as root, the server runs as the
//! unprivileged `postgres` user (through `setpriv`), in a data dir that user owns.
//!
//! `STRATA_TEST_POSTGRES_URL`, when set, names an existing server to use instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_port, require_program};

const INSTALL: &str = "apt-get install -y postgresql";

/// Starts the server in the foreground (so the watchdog holds its PID), stops it with
/// a fast shutdown when the test process is gone, and then removes its temp dir (a
/// shared server is a static, never dropped).
const WATCHDOG: &str = r#"
owner=$1; dir=$2; log=$3; shift 3
"$@" >"$log" 2>&1 &
child=$!
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.2; done
kill -INT "$child" 2>/dev/null
wait "$child" 2>/dev/null
kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
"#;

/// A running PostgreSQL server (or the one `STRATA_TEST_POSTGRES_URL` names).
#[derive(Debug)]
pub struct PgServer {
    dir: Option<tempfile::TempDir>,
    port: u16,
    external: Option<String>,
    watchdog: Option<Child>,
}

fn bin(name: &str) -> PathBuf {
    let packaged = Path::new("/usr/lib/postgresql/15/bin").join(name);
    if packaged.is_file() {
        packaged
    } else {
        require_program(name, INSTALL)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A command that runs `program` as the `postgres` user when we are root.
fn as_server_user(program: PathBuf) -> Command {
    if is_root() {
        let mut cmd = Command::new(require_program("setpriv", "apt-get install -y util-linux"));
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Starts a fresh server, or wraps `STRATA_TEST_POSTGRES_URL`.
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("STRATA_TEST_POSTGRES_URL") {
            return PgServer {
                dir: None,
                port: 0,
                external: Some(url),
                watchdog: None,
            };
        }
        let initdb = bin("initdb");
        let dir = tempfile::Builder::new()
            .prefix("strata-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("create the data dir");
        if is_root() {
            // The server user must own its data dir and reach its socket dir.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown the PostgreSQL temp dir to postgres"
            );
        }
        let out = as_server_user(initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        let mut server = as_server_user(bin("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "max_connections=200", "-c", "fsync=on"]);
        let mut args = vec![server.get_program().to_owned()];
        args.extend(server.get_args().map(|a| a.to_owned()));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("strata-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(dir.path())
            .arg(&log)
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sh for the PostgreSQL watchdog");
        let pg = PgServer {
            dir: Some(dir),
            port,
            external: None,
            watchdog: Some(watchdog),
        };
        pg.wait_ready();
        pg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(bin("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self
            .dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("postgres.log")).ok())
            .unwrap_or_default();
        panic!("PostgreSQL did not become ready within 30 s; its log:\n{log}");
    }

    /// The connection URL (no schema).
    pub fn base_url(&self) -> String {
        match &self.external {
            Some(url) => url.clone(),
            None => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// The Strata store URL for one schema (one independent store).
    pub fn url(&self, schema: &str) -> String {
        let base = self.base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}schema={schema}")
    }

    /// Runs SQL through the real `psql` (an independent checker) and returns its
    /// unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(bin("psql"))
            .arg(self.base_url())
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // The watchdog stops the server once its owner is gone; here the owner
            // lives on, so stop the server by its data dir.
            if let Some(dir) = &self.dir {
                let _ = as_server_user(bin("pg_ctl"))
                    .arg("-D")
                    .arg(dir.path().join("data"))
                    .args(["stop", "-m", "fast", "-w"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// One server shared by every test of this test binary; tests use their own schemas.
pub fn shared() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(PgServer::start)
}
