//! Long-running `strata` processes for tests: started with `--metrics` on a free
//! port, scraped over plain HTTP (a std `TcpStream`), stopped with SIGTERM (killed if
//! a test fails first); and readers of the Prometheus text and of JSON log lines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use strata_testkit::free_port;

use super::Sandbox;

/// Connection flags that make a dead etcd fail fast instead of after 30 s.
pub const FAST: [&str; 4] = ["--dial-timeout", "1s", "--command-timeout", "2s"];

/// A `strata` process, killed if the test fails before it stops it.
pub struct Daemon {
    child: Option<Child>,
    port: u16,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Daemon {
    pub fn start(s: &Sandbox, name: &str, args: &[&str]) -> Daemon {
        let port = free_port();
        let stdout = s.path(&format!("{name}.stdout"));
        let stderr = s.path(&format!("{name}.stderr"));
        let addr = format!("127.0.0.1:{port}");
        let mut all: Vec<&str> = FAST.to_vec();
        all.extend_from_slice(args);
        all.extend_from_slice(&["--metrics", &addr]);
        let child = s
            .command(&all)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn strata");
        Daemon {
            child: Some(child),
            port,
            stdout,
            stderr,
        }
    }

    /// (status code, body) of `GET path`, or `None` while nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }

    pub fn metrics(&self) -> String {
        match self.get("/metrics") {
            Some((200, body)) => body,
            other => panic!("GET /metrics: {other:?}\n{}", self.log()),
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        value(&self.metrics(), name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Polls (up to 60 s) until `ok` holds; fails showing the metrics, health and log.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s; metrics:\n{}\nhealth: {:?}\nlog:\n{}",
                self.get("/metrics").map(|r| r.1).unwrap_or_default(),
                self.get("/healthz"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn health(&self) -> Option<(u16, String)> {
        self.get("/healthz")
    }

    /// SIGTERM, and the exit must be clean; returns the log.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "did not stop cleanly: {log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of an unlabelled sample `name` in a text exposition.
pub fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Every named metric has its HELP and TYPE lines, and a sample.
pub fn assert_described(text: &str, names: &[(&str, &str)]) {
    for (name, kind) in names {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{text}"
        );
        value(text, name);
    }
}

/// Writes a key with `strata put` and returns the revision it made.
pub fn put(s: &Sandbox, url: &str, key: &str, value: &str) -> f64 {
    let out = s.ok(&["--store", url, "put", key, value]);
    out.trim()
        .strip_prefix("OK (revision ")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("put said {out:?}"))
        .parse()
        .unwrap()
}

pub fn healthy(d: &Daemon) -> bool {
    d.health()
        .is_some_and(|(code, body)| code == 200 && body == "ok\n")
}

/// 503, with a one-line reason that names `url`.
pub fn failing_naming(d: &Daemon, url: &str) -> bool {
    d.health().is_some_and(|(code, body)| {
        code == 503 && body.contains(url) && body.trim_end().lines().count() == 1
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`, checked by hand and by the project's own parser.
pub fn assert_rfc3339_utc(time: &str) {
    let b = time.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && time.ends_with('Z')
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    assert!(shape, "{time:?} is not RFC 3339 UTC");
    assert!(
        strata_core::clock::parse_rfc3339(&time[..19]).is_some(),
        "{time}"
    );
}

/// Every line of `text` is one JSON object with level, time and message.
pub fn json_lines(text: &str, what: &str) -> Vec<serde_json::Value> {
    assert!(!text.trim().is_empty(), "{what}: no lines");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what}: not one JSON object ({e}): {l:?}"));
            assert!(
                matches!(v["level"].as_str(), Some("info" | "warn" | "error")),
                "{what}: {l}"
            );
            assert_rfc3339_utc(v["time"].as_str().unwrap_or_default());
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}: {l}"
            );
            v
        })
        .collect()
}
