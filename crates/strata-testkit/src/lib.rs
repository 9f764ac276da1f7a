//! Test harnesses for Strata: real servers (and a real browser) started on free 127.0.0.1 ports in temp
//! dirs, and always stopped. A missing server binary fails the test with the command
//! that installs it; nothing is skipped silently.

pub mod disk;
pub mod etcd;
pub mod etcd_v2;
pub mod fixtures;
pub mod netns;
pub mod postgres;
pub mod webdriver;

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// Finds a program on PATH, or panics with how to install it.
pub fn require_program(name: &str, install: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` was not found on PATH; install it with `{install}` (scripts/test.sh does this when run as root)"))
}

/// Runs the real `git` CLI, the independent checker of backup repositories, in
/// `repo`; returns whether it succeeded and its stdout followed by its stderr.
pub fn git_try(repo: &std::path::Path, args: &[&str]) -> (bool, String) {
    let git = require_program("git", "apt-get install -y git");
    let out = std::process::Command::new(git)
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A runner of the `openssl` CLI in `dir` (certificates for TLS tests); each call
/// panics with openssl's output when it fails.
pub fn openssl_in(dir: &std::path::Path) -> impl Fn(&[&str]) + '_ {
    let openssl = require_program("openssl", "apt-get install -y openssl");
    move |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `git` in `repo` and returns its stdout; panics with its output on failure.
pub fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let git = require_program("git", "apt-get install -y git");
    let out = std::process::Command::new(git)
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
