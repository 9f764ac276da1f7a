//! Build script: the long version string (`strata --version`) names the commit the
//! binary was built from and its date, so a report can say exactly what ran.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    let version = format!(
        "{} (commit {commit}, {date}; backends: sqlite, etcd, postgres with TLS (rustls))",
        env!("CARGO_PKG_VERSION")
    );
    println!("cargo:rustc-env=STRATA_LONG_VERSION={version}");
    // A new commit (or another branch) means a new version string: watch HEAD and the
    // ref it names, not the index (which every `git add` touches).
    let git_dir = std::path::Path::new("../../.git");
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD")) {
        if let Some(name) = head.trim().strip_prefix("ref: ") {
            watched.push(git_dir.join(name));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
