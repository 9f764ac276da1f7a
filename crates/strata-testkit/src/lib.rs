//! Test harnesses for Strata: real servers started on free 127.0.0.1 ports in temp
//! dirs, and always stopped. A missing server binary fails the test with the command
//! that installs it; nothing is skipped silently.

pub mod etcd;
pub mod fixtures;
pub mod postgres;

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
