//! Throwaway etcd servers: one node or a cluster, on free loopback ports, data in a
//! temp dir. Members can be killed (SIGKILL) and restarted by PID.
//!
//! Every etcd runs under a tiny `sh` watchdog that kills it when the test process
//! exits and then removes the cluster's temp dir, so a server shared by a whole test
//! binary (see [`shared`]) neither outlives it nor leaves its data behind, even though
//! statics are never dropped.
//!
//! A cluster can also run in a test network of its own ([`crate::netns`]), each
//! member on its own host, so that a member can be cut off rather than killed; the
//! parts that differ there are `net.rs`.

mod net;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::{free_port, require_program};

const INSTALL: &str = "apt-get install -y etcd-server etcd-client";

/// The watchdog: start etcd, record its PID, and kill it when the owner (the test
/// process) or etcd itself is gone; once the owner is gone, remove the cluster's temp
/// dir (a test that kills a member restarts it on the same data).
const WATCHDOG: &str = r#"
owner=$1; dir=$2; pidfile=$3; log=$4; shift 4
"$@" >"$log" 2>&1 &
child=$!
echo $child > "$pidfile"
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.2; done
kill -9 "$child" 2>/dev/null
wait "$child" 2>/dev/null
kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
"#;

/// PEM files for a TLS cluster: a CA, and a certificate for 127.0.0.1 that serves as
/// both the servers' and the client's.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Makes a throwaway CA and a certificate for 127.0.0.1 with the `openssl` CLI.
    pub fn generate(dir: &std::path::Path) -> TlsFiles {
        let run = crate::openssl_in(dir);
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=strata-test-ca",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "node.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
        }
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    /// Its address: 127.0.0.1, or its host's in a test network.
    host: String,
    client_port: u16,
    peer_port: u16,
    watchdog: Option<Child>,
}

/// A running etcd cluster (one or more members).
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    tls: Option<TlsFiles>,
    /// Serves the v2 API too (`--enable-v2`, etcd 3.4).
    v2: bool,
    /// The test network the members run in, if any.
    net: Option<Arc<crate::netns::Net>>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster serves requests.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, None)
    }

    /// Starts one member that serves clients over TLS only and requires a client
    /// certificate signed by the test CA.
    pub fn start_tls(tls: TlsFiles) -> Self {
        Self::start_with(1, Some(tls))
    }

    /// Starts one member that also serves the v2 API (`--enable-v2`, which etcd 3.4
    /// has and 3.6 no longer does), over TLS when `tls` is given.
    pub fn start_v2(tls: Option<TlsFiles>) -> Self {
        Self::start_all(1, tls, true, None)
    }

    /// Starts `n` members, each on its own host of a new test network (whose client
    /// host runs [`etcdctl`] and the commands under test: [`EtcdCluster::net`]).
    pub fn start_in_net(n: usize) -> Self {
        Self::start_all(n, None, false, Some(Arc::new(crate::netns::Net::new(n))))
    }

    fn start_with(n: usize, tls: Option<TlsFiles>) -> Self {
        Self::start_all(n, tls, false, None)
    }

    fn start_all(
        n: usize,
        tls: Option<TlsFiles>,
        v2: bool,
        net: Option<Arc<crate::netns::Net>>,
    ) -> Self {
        require_program("etcd", INSTALL);
        let dir = tempfile::Builder::new()
            .prefix("strata-etcd-")
            .tempdir()
            .expect("temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| match &net {
                // A host of its own: the ports are all free there.
                Some(net) => Member {
                    name: format!("m{i}"),
                    host: net.addr(i),
                    client_port: 2379,
                    peer_port: 2380,
                    watchdog: None,
                },
                None => Member {
                    name: format!("m{i}"),
                    host: "127.0.0.1".into(),
                    client_port: free_port(),
                    peer_port: free_port(),
                    watchdog: None,
                },
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, m.host, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "strata-test-{}-{}",
            std::process::id(),
            dir.path().display().to_string().len()
        );
        let mut cluster = EtcdCluster {
            dir,
            members,
            initial_cluster,
            token,
            tls,
            v2,
            net,
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        for i in 0..n {
            cluster.wait_healthy(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let member = &self.members[i];
        let data = self.dir.path().join(&member.name);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}:{}", member.host, member.client_port);
        let peer = format!("http://{}:{}", member.host, member.peer_port);
        let mut args: Vec<String> = vec![
            "etcd".into(),
            format!("--name={}", member.name),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-state={state}"),
            format!("--initial-cluster-token={}", self.token),
            "--logger=zap".into(),
            "--log-level=warn".into(),
        ];
        if self.v2 {
            args.push("--enable-v2=true".into());
        }
        if let Some(net) = &self.net {
            let mut prefixed = net.exec_prefix(i);
            prefixed.push(require_program("etcd", INSTALL).display().to_string());
            prefixed.extend(args.drain(1..));
            args = prefixed;
        }
        if let Some(tls) = &self.tls {
            args.push(format!("--cert-file={}", tls.cert.display()));
            args.push(format!("--key-file={}", tls.key.display()));
            args.push(format!("--trusted-ca-file={}", tls.ca.display()));
            args.push("--client-cert-auth".into());
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("strata-etcd-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .arg(self.pid_file(i))
            .arg(self.log_file(i))
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sh for the etcd watchdog");
        self.members[i].watchdog = Some(child);
    }

    fn pid_file(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.pid", self.members[i].name))
    }

    fn log_file(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// The last lines of a member's log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.log_file(i)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The PID of a member's etcd process, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        std::fs::read_to_string(self.pid_file(i))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `host:port` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}:{}", m.host, m.client_port))
            .collect()
    }

    /// The Strata store URL of the cluster: `etcd://h:p,h:p,…`.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// `http://h:p,…`, the form `etcdctl --endpoints` takes.
    pub fn client_urls(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoints()
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The TLS files, for a TLS cluster.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills a member with SIGKILL and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(pid) = self.pid(i) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if let Some(mut watchdog) = self.members[i].watchdog.take() {
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_file(self.pid_file(i));
    }

    /// Restarts a killed member on its data dir and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].watchdog.is_none(), "member {i} still runs");
        self.spawn(i, "existing");
        self.wait_healthy(i);
    }

    /// Which member is the leader now (from each member's metrics).
    pub fn leader(&self) -> Option<usize> {
        if self.net.is_some() {
            return self.leader_in_net();
        }
        (0..self.members.len()).find(|&i| {
            self.members[i].watchdog.is_some()
                && http_get(self.members[i].client_port, "/metrics")
                    .is_some_and(|body| body.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
        })
    }

    /// Waits until a member answers `/health` with true (it has a leader).
    pub fn wait_healthy(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.healthy(i) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "etcd member {i} did not become healthy within 30 s; its log ends with:\n{}",
            self.log_tail(i)
        );
    }
}

impl EtcdCluster {
    fn healthy(&self, i: usize) -> bool {
        if self.net.is_some() {
            return self.healthy_in_net(i);
        }
        let port = self.members[i].client_port;
        match &self.tls {
            None => http_get(port, "/health").is_some_and(|b| b.contains("\"health\":\"true\"")),
            // Over TLS, ask etcdctl (plain HTTP cannot speak to the port).
            Some(tls) => Command::new(require_program("etcdctl", INSTALL))
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=https://127.0.0.1:{port}"))
                .args(tls_flags(tls))
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success()),
        }
    }
}

fn tls_flags(tls: &TlsFiles) -> Vec<String> {
    vec![
        format!("--cacert={}", tls.ca.display()),
        format!("--cert={}", tls.cert.display()),
        format!("--key={}", tls.key.display()),
    ]
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Runs the real `etcdctl` against the cluster (an independent checker for tests)
/// and returns its standard output; panics with its stderr when it fails.
pub fn etcdctl(cluster: &EtcdCluster, args: &[&str]) -> String {
    etcdctl_as(cluster, None, args)
}

/// [`etcdctl`] as an etcd user (`name:password`).
pub fn etcdctl_as(cluster: &EtcdCluster, user: Option<&str>, args: &[&str]) -> String {
    let out = cluster
        .etcdctl_command()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", cluster.client_urls()))
        .args(cluster.tls().map(tls_flags).unwrap_or_default())
        .args(user.map(|u| format!("--user={u}")))
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything under `prefix` as the real etcdctl sees it: key → (value, version).
pub fn etcdctl_dump(
    cluster: &EtcdCluster,
    prefix: &str,
) -> std::collections::BTreeMap<String, (String, i64)> {
    let out = etcdctl(cluster, &["get", "--prefix", prefix, "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("etcdctl -w json output");
    let text = |v: &serde_json::Value| {
        String::from_utf8_lossy(&base64_decode(v.as_str().unwrap_or(""))).into_owned()
    };
    json["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        text(&kv["key"]),
                        (text(&kv["value"]), kv["version"].as_i64().unwrap_or(0)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes standard base64 (what `etcdctl -w json` prints keys and values in).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text:?}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        out.extend(n.to_be_bytes()[1..chunk.len()].iter());
    }
    out
}

/// A plain HTTP/1.0 GET on loopback; the body, or `None` on any failure.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// One single-node etcd shared by every test of this test binary. Tests share it by
/// using their own key prefixes.
pub fn shared() -> &'static EtcdCluster {
    static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
    SHARED.get_or_init(|| EtcdCluster::start(1))
}

/// A second single-node etcd that one test at a time holds, for tests that compact
/// or check exact revision arithmetic. Hold the guard for the whole test.
pub async fn exclusive() -> (&'static EtcdCluster, tokio::sync::OwnedMutexGuard<()>) {
    static EXCLUSIVE: OnceLock<(EtcdCluster, Arc<tokio::sync::Mutex<()>>)> = OnceLock::new();
    let (cluster, lock) =
        EXCLUSIVE.get_or_init(|| (EtcdCluster::start(1), Arc::new(tokio::sync::Mutex::new(()))));
    let guard = lock.clone().lock_owned().await;
    (cluster, guard)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(super::base64_decode("L2EvYg=="), b"/a/b");
        assert_eq!(super::base64_decode("Zm9vYmFy"), b"foobar");
        assert_eq!(super::base64_decode("Zm9vYg=="), b"foob");
        assert_eq!(super::base64_decode(""), b"");
    }
}
