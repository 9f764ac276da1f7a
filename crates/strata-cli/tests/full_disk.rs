//! A full disk, on a size-limited tmpfs that the test fills (as root, as CI runs):
//! `load` into SQLite, `export --out` and `backup run` each stop with a clear error,
//! leave nothing half-written (SQLite's integrity check, `git fsck --strict`, no
//! partial file), and once space is freed the same command finishes the job.

mod util;

use std::collections::BTreeMap;

use strata_testkit::disk::SmallFs;
use strata_testkit::git_try;
use util::Sandbox;

/// A snapshot of `n` keys of 200 bytes each, that compress poorly (as a backup's
/// files would otherwise shrink to nothing).
fn snapshot(s: &Sandbox, n: usize) -> BTreeMap<String, String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = || {
        (0..25)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:08x}", x as u32)
            })
            .collect::<String>()
    };
    let data: BTreeMap<String, String> =
        (0..n).map(|i| (format!("/full/{i:06}"), noise())).collect();
    std::fs::write(s.path("big.json"), serde_json::to_string(&data).unwrap()).unwrap();
    data
}

fn export(s: &Sandbox, store: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&s.ok(&["--store", store, "export", "--prefix", "/full/"])).unwrap()
}

#[test]
fn load_into_sqlite_on_a_full_disk_stops_cleanly_and_finishes_after() {
    let fs = SmallFs::mount(40);
    let s = Sandbox::new();
    let data = snapshot(&s, 30_000);
    let db = fs.path().join("s.db");
    let store = format!("sqlite:{}", db.display());
    s.ok(&["--store", &store, "put", "/full/first", "x"]);
    fs.fill(256 * 1024);
    let (_, err) = s.expect(
        1,
        &["--store", &store, "load", "big.json", "--batch", "500"],
    );
    assert!(
        err.contains("full") && err.contains(db.to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains("hint: the disk is full"), "{err}");
    // The database opens and is whole.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let partial = export(&s, &store);
    assert!(partial.len() < data.len() + 1, "the load did not stop");
    fs.free();
    s.ok(&["--store", &store, "load", "big.json", "--batch", "500"]);
    let mut done = export(&s, &store);
    done.remove("/full/first");
    assert_eq!(done, data);
}

#[test]
fn export_on_a_full_disk_leaves_no_partial_file() {
    let fs = SmallFs::mount(16);
    let s = Sandbox::new();
    snapshot(&s, 30_000);
    s.ok(&["load", "big.json"]);
    fs.fill(64 * 1024);
    let out = fs.path().join("e.json");
    let (_, err) = s.expect(
        1,
        &[
            "export",
            "--prefix",
            "/full/",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains(out.to_str().unwrap()) && err.contains("No space left on device"),
        "{err}"
    );
    assert!(err.contains("nothing was left there"), "{err}");
    let left: Vec<String> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    fs.free();
    s.ok(&[
        "export",
        "--prefix",
        "/full/",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(out.exists());
}

#[test]
fn backup_run_on_a_full_disk_keeps_the_repository_sound_and_finishes_after() {
    let fs = SmallFs::mount(24);
    let s = Sandbox::new();
    s.ok(&["put", "/full/seed", "1"]);
    let repo = fs.path().join("repo.git");
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    snapshot(&s, 30_000);
    s.ok(&["load", "big.json"]);
    fs.fill(512 * 1024);
    let (_, err) = s.expect(1, &["backup", "run", "--repo", r]);
    assert!(err.contains("hint: the disk is full"), "{err}");
    let (sound, text) = git_try(&repo, &["fsck", "--strict"]);
    assert!(sound, "git fsck after the failed run: {text}");
    // A first backup (whose pack Strata writes itself) on the full disk: refused the
    // same way, no temporary or lone pack file left.
    let first = fs.path().join("first.git");
    let f = first.to_str().unwrap();
    let (_, err) = s.expect(1, &["backup", "run", "--repo", f]);
    assert!(err.contains("disk is full"), "{err}");
    let pack_dir = first.join("objects/pack");
    let left: Vec<_> = std::fs::read_dir(&pack_dir)
        .expect("the repository was made, its pack folder too")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", pack_dir.display());
    fs.free();
    s.ok(&["backup", "run", "--repo", r]);
    s.ok(&["backup", "verify", "--repo", r]);
    let (sound, text) = git_try(&repo, &["fsck", "--strict"]);
    assert!(sound, "{text}");
    s.ok(&["backup", "run", "--repo", f]);
    s.ok(&["backup", "verify", "--repo", f]);
    let (sound, text) = git_try(&first, &["fsck", "--strict"]);
    assert!(sound, "{text}");
}
