//! A throwaway PostgreSQL server: `initdb` into a temp dir, `postgres` on a free
//! 127.0.0.1 port with trust authentication, under the same watchdog as etcd so it
//! stops with the test process. Binaries come from the newest
//! `/usr/lib/postgresql/VERSION/bin` that has them all, or PATH. PostgreSQL refuses to run as root: as root, the server runs as the
//! unprivileged `postgres` user (through `setpriv`), in a data dir that user owns.
//!
//! `STRATA_TEST_POSTGRES_URL`, when set, names an existing server to use instead.
//!
//! [`PgServer::start_tls`] starts one with `ssl=on` and certificates that the `openssl`
//! CLI makes in its temp dir ([`PgTlsFiles`]); it is always a server of its own.

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
    tls: Option<PgTlsFiles>,
}

/// The role that a TLS server lets in by password (SCRAM-SHA-256) over TLS, for
/// channel-binding tests; every other role needs a client certificate over TLS.
pub const SCRAM_ROLE: &str = "strata_scram";
/// The password of [`SCRAM_ROLE`].
pub const SCRAM_PASSWORD: &str = "strata-test-password";

/// Authentication on a TLS server: by client certificate (CN = the user) over TLS,
/// except [`SCRAM_ROLE`] by password; trust over plain TCP and the Unix socket (for
/// `psql` and the harness).
fn tls_hba() -> String {
    format!(
        "local all all trust\n\
         hostssl all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256\n\
         hostssl all all 127.0.0.1/32 cert\n\
         hostnossl all all 127.0.0.1/32 trust\n"
    )
}

/// PEM files for a TLS server and its clients, made with the `openssl` CLI (EC P-256).
#[derive(Clone, Debug)]
pub struct PgTlsFiles {
    /// The CA that signed the server's certificate and [`PgTlsFiles::client_cert`].
    pub ca: PathBuf,
    /// The server's certificate: CN and subjectAltName `DNS:localhost` only, so it is
    /// valid for `localhost` and not for `127.0.0.1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate for user `postgres` (CN=postgres), signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA, which signed neither the server's certificate nor `client_cert`.
    pub other_ca: PathBuf,
    /// A client certificate for `postgres` signed by `other_ca`: the server refuses it.
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

impl PgTlsFiles {
    /// Makes the CAs and certificates in `dir`; keys are mode 0600, as PostgreSQL wants.
    pub fn generate(dir: &Path) -> PgTlsFiles {
        let run = crate::openssl_in(dir);
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "strata-test-ca"), ("other-ca", "strata-other-ca")] {
            let (key, pem, subj) = (
                format!("{name}.key"),
                format!("{name}.pem"),
                format!("/CN={cn}"),
            );
            let mut args = vec!["req", "-x509"];
            args.extend(new_key);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            run(&args);
        }
        let leaves = [
            (
                "server",
                "localhost",
                "ca",
                "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "postgres", "ca", "extendedKeyUsage=clientAuth\n"),
            (
                "other-client",
                "postgres",
                "other-ca",
                "extendedKeyUsage=clientAuth\n",
            ),
        ];
        for (name, cn, ca, ext) in leaves {
            let (key, csr, pem, cnf) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.cnf"),
            );
            let subj = format!("/CN={cn}");
            let mut args = vec!["req"];
            args.extend(new_key);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&args);
            std::fs::write(dir.join(&cnf), format!("basicConstraints=CA:FALSE\n{ext}"))
                .expect("write an openssl extension file");
            let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &cnf,
            ]);
        }
        for key in ["ca", "other-ca", "server", "client", "other-client"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join(format!("{key}.key")),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod 0600 a key file");
        }
        PgTlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            other_client_cert: dir.join("other-client.pem"),
            other_client_key: dir.join("other-client.key"),
        }
    }
}

/// A PostgreSQL program from the newest `/usr/lib/postgresql/VERSION/bin` that holds
/// `initdb`, `pg_ctl` and `postgres` (the check `scripts/install-deps.sh` makes), else
/// from PATH.
fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|p| bin.join(p).is_file())
                    .then_some((version, bin))
            })
            .collect();
        dirs.sort();
        dirs.pop().map(|(_, bin)| bin)
    });
    match dir {
        Some(dir) => dir.join(name),
        None => require_program(name, INSTALL),
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
                tls: None,
            };
        }
        Self::start_with(false)
    }

    /// Starts a fresh server with `ssl=on`: its certificates ([`PgTlsFiles`], in the temp
    /// dir) as `ssl_cert_file`, `ssl_key_file` and `ssl_ca_file`, and the authentication
    /// of `tls_hba` (client certificates over TLS, trust over plain TCP).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let initdb = bin("initdb");
        let dir = tempfile::Builder::new()
            .prefix("strata-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("create the data dir");
        let tls = tls.then(|| {
            let tls_dir = dir.path().join("tls");
            std::fs::create_dir(&tls_dir).expect("create the TLS dir");
            std::fs::write(tls_dir.join("pg_hba.conf"), tls_hba()).expect("write pg_hba.conf");
            PgTlsFiles::generate(&tls_dir)
        });
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
        if let Some(tls) = &tls {
            let hba = tls.ca.with_file_name("pg_hba.conf");
            for (name, path) in [
                ("ssl_cert_file", &tls.server_cert),
                ("ssl_key_file", &tls.server_key),
                ("ssl_ca_file", &tls.ca),
                ("hba_file", &hba),
            ] {
                server.arg("-c").arg(format!("{name}={}", path.display()));
            }
            server.args(["-c", "ssl=on"]);
        }
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
            tls,
        };
        pg.wait_ready();
        if pg.tls.is_some() {
            pg.psql(&format!(
                "CREATE ROLE {SCRAM_ROLE} LOGIN PASSWORD '{SCRAM_PASSWORD}'; \
                 GRANT CREATE ON DATABASE postgres TO {SCRAM_ROLE}"
            ));
        }
        pg
    }

    /// The TLS files of a server from [`PgServer::start_tls`].
    pub fn tls(&self) -> Option<&PgTlsFiles> {
        self.tls.as_ref()
    }

    /// The port the server listens on (0 for an external server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for user `postgres` over TLS to `host` (`localhost` matches the server's
    /// certificate, `127.0.0.1` does not) with `sslmode`, the test CA as `sslrootcert`
    /// and the `postgres` client certificate. Panics on a server without TLS.
    pub fn tls_url(&self, host: &str, sslmode: &str) -> String {
        let tls = self.tls().expect("a server from PgServer::start_tls");
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={sslmode}&sslrootcert={}&sslcert={}&sslkey={}",
            self.port,
            tls.ca.display(),
            tls.client_cert.display(),
            tls.client_key.display()
        )
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

    /// The connection URL (no schema); for a TLS server, the plain one (`sslmode=disable`).
    pub fn base_url(&self) -> String {
        match &self.external {
            Some(url) => url.clone(),
            None if self.tls.is_some() => format!(
                "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
                self.port
            ),
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

/// One TLS server ([`PgServer::start_tls`]) shared by every test of this test binary.
pub fn shared_tls() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(PgServer::start_tls)
}
