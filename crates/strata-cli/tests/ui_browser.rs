//! `strata ui` in a real browser: headless Chromium (Debian's) driven over WebDriver
//! by its ChromeDriver, against a console over the sigilgate example with a Git
//! backup. Browse to a user, open its device (its secret key never in the page), edit
//! a field, see the conflict when another writer changed it meanwhile (the typed edit
//! kept, the page saying it is behind), see the page update itself with the history
//! diff after a `strata put` from the CLI, restore the backed-up value through the
//! plan's confirmation, go to a route with the completing path box, follow its
//! reference to its node and back, search, create an object from the form. The CLI checks what was written.
//!
//! Screenshots of the main pages are written to `$STRATA_SCREENSHOTS` when set (the
//! README's pictures: `STRATA_SCREENSHOTS=docs/screenshots cargo nextest run --test
//! ui_browser`), else into the test's temp dir.

mod util;

use std::path::PathBuf;

use strata_testkit::webdriver::Browser;
use util::console::Console;
use util::{examples, Sandbox};

const USER: &str = "/sigilgate/users/129";
const DEVICE: &str = "/sigilgate/users/129/devices/0c5cd43b-f53e-4c38-be5c-39319d892098";
const ROUTE: &str = "/sigilgate/routes/0c5cd43b-f53e-4c38-be5c-39319d892098";
const NODE: &str = "/sigilgate/nodes/10.20.5.244";

fn link(href: &str) -> String {
    format!("a[href='{href}']")
}

#[test]
fn a_browser_browses_edits_restores_and_follows_references() {
    let s = Sandbox::new();
    let schema = s.load_sigilgate();
    let author = "Strata Test <test@example.com>";
    s.ok(&[
        "backup", "run", "--repo", "backup", "--schema", &schema, "--author", author,
    ]);
    let migrations = examples()
        .join("sigilgate/migrations")
        .display()
        .to_string();
    let c = Console::start(
        &s,
        &[
            "--schema",
            &schema,
            "--repo",
            "backup",
            "--migrations",
            &migrations,
            "--allow-writes",
        ],
    );
    let base = format!("http://{}", c.addr);
    let shots = std::env::var_os("STRATA_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| s.path("screenshots"));
    let b = Browser::start(1280, 860);
    let has = |text: &str| {
        let text = text.to_owned();
        move |b: &Browser| b.source().contains(&text)
    };

    // Browse from the root to a user.
    b.goto(&base);
    b.click(&b.find(&link("/browse?prefix=/sigilgate/")));
    b.click(&b.find(&link("/browse?prefix=/sigilgate/users/")));
    b.wait_until(10, "the users level", has("entries at revision"));
    b.screenshot(&shots, "browse");
    b.click(&b.find(&format!("a.entity[href='/object?path={USER}']")));
    b.wait_until(10, "the user's page", has("u_d58dcd"));
    b.screenshot(&shots, "object");

    // Its device: typed fields, the secret key masked and absent from the page.
    b.click(&b.find(&link(&format!("/browse?prefix={USER}/"))));
    b.click(&b.find(&link(&format!("/browse?prefix={USER}/devices/"))));
    b.click(&b.find(&format!("a.entity[href='/object?path={DEVICE}']")));
    b.wait_until(10, "the device's page", has("secret, not shown"));
    let public_key = s.ok(&["get", &format!("{DEVICE}/public_key")]);
    assert!(!b.source().contains(public_key.trim()));

    // Edit its name.
    let name_key = format!("{DEVICE}/name");
    let original = s.ok(&["get", &name_key]).trim().to_owned();
    b.click(&b.find(&link(&format!("/key?k={name_key}"))));
    b.fill(&b.find("textarea[name=value]"), "work laptop");
    b.click(&b.find("form[action='/put'] button"));
    b.wait_until(10, "the saved value", |b| {
        b.try_find("pre")
            .is_some_and(|p| b.text(&p) == "work laptop")
    });
    assert_eq!(s.ok(&["get", &name_key]).trim(), "work laptop");
    assert!(
        c.log().contains(&format!("wrote {name_key} at revision")),
        "{}",
        c.log()
    );

    // Another writer changes it while an edit is being typed: the page says it is
    // behind and keeps the edit; saving it is a conflict, and nothing is overwritten.
    b.fill(&b.find("textarea[name=value]"), "my edit");
    s.ok(&["put", &name_key, "changed elsewhere"]);
    b.wait_until(10, "the note that the page is behind", |b| {
        b.try_find("#behind")
            .is_some_and(|e| b.text(&e).contains("Your edit is kept"))
    });
    b.screenshot(&shots, "behind");
    b.click(&b.find("form[action='/put'] button"));
    b.wait_until(10, "the conflict page", has("Conflict"));
    assert!(b.source().contains("changed elsewhere") && b.source().contains("my edit"));
    b.screenshot(&shots, "conflict");
    assert_eq!(s.ok(&["get", &name_key]).trim(), "changed elsewhere");

    // A page left open updates itself after a put from the CLI: the new value, and the
    // history with each version beside the one before.
    b.goto(&format!("{base}/key?k={name_key}"));
    b.find("#history");
    s.ok(&["put", &name_key, "third name"]);
    b.wait_until(15, "the page updated by itself", |b| {
        b.try_find("pre")
            .is_some_and(|p| b.text(&p) == "third name")
    });
    let newest = b.text(&b.find("#history tr:nth-child(2)"));
    assert!(
        newest.contains("changed elsewhere") && newest.contains("third name"),
        "{newest}"
    );
    b.screenshot(&shots, "key");

    // Restore the backed-up name: the plan shows the value now and after; confirmed,
    // it is written.
    b.click(&b.find("#backup a.restore"));
    b.wait_until(10, "the restore plan", has("confirm-restore"));
    let plan = b.text(&b.find("#plan"));
    assert!(
        plan.contains("third name") && plan.contains(&original),
        "{plan}"
    );
    b.screenshot(&shots, "restore");
    b.click(&b.find("#confirm-restore"));
    b.wait_until(10, "back on the key", |b| {
        b.try_find("pre").is_some_and(|p| b.text(&p) == original)
    });
    assert_eq!(s.ok(&["get", &name_key]).trim(), original);
    assert!(
        c.log().contains(&format!("restored {name_key}")),
        "{}",
        c.log()
    );

    // A route names its node: go to it with the path box (its completion offers the
    // routes level), follow the reference there and back.
    b.fill(&b.find("#path"), "/sigilgate/ro");
    b.wait_until(10, "the path box's completions", |b| {
        b.run(
            "return Array.from(document.querySelectorAll('#paths option')).map(o => o.value)",
            serde_json::json!([]),
        )
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "/sigilgate/routes/"))
    });
    b.fill(&b.find("#path"), &format!("{ROUTE}\u{E007}"));
    b.wait_until(10, "the route's page", |b| b.url().ends_with(ROUTE));
    b.click(&b.find(&format!("a.ref[href='/object?path={NODE}']")));
    b.wait_until(10, "the node's page", has("referenced by"));
    b.click(&b.find(&format!("a.ref[href='/key?k={ROUTE}']")));
    b.wait_until(10, "back on the route", |b| b.url().ends_with(ROUTE));
    b.goto(&format!("{base}/refs?key={NODE}&depth=2"));
    b.wait_until(10, "the references drawn", has("<svg"));
    b.screenshot(&shots, "refs");

    // Search from the box in the header.
    b.goto(&base);
    b.fill(&b.find("header input[name=q]"), "u_d58dcd\u{E007}");
    b.click(&b.find(&format!("a[href='/object?path={USER}']")));
    b.wait_until(10, "the hit's page", has("u_d58dcd"));

    // Create a node from the form: all its fields, at once.
    b.goto(&format!("{base}/entities"));
    b.screenshot(&shots, "entities");
    b.click(&b.find(&link("/new?entity=node")));
    b.fill(&b.find("input[name='v.ip']"), "10.30.0.1");
    b.fill(&b.find("input[name='f.grpc_path']"), "/fresh");
    b.run(
        "document.querySelector(\"select[name='f.role']\").value='core';\
         document.querySelector(\"select[name='f.status']\").value='up';",
        serde_json::json!([]),
    );
    b.click(&b.find("#create button"));
    b.wait_until(10, "the new node's page", |b| {
        b.url().contains("/object?path=/sigilgate/nodes/10.30.0.1")
    });
    assert_eq!(
        s.ok(&["get", "--prefix", "/sigilgate/nodes/10.30.0.1/"]),
        "/sigilgate/nodes/10.30.0.1/grpc_path = /fresh\n\
         /sigilgate/nodes/10.30.0.1/role = core\n\
         /sigilgate/nodes/10.30.0.1/status = up\n"
    );
    b.goto(&format!("{base}/health"));
    b.wait_until(10, "the health page", has("Migrations"));
    b.screenshot(&shots, "health");
}
