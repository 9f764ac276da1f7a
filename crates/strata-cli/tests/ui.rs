//! `strata ui` at the HTTP level, with curl as the independent client: the pages of
//! the sigilgate example (a level with key counts, an object with its fields and
//! references, a key with its history, search), a value holding `<script>` shown as
//! text, the broker's passwords never in any answer, no route that writes, and off
//! loopback: refused without a token, every request without it refused.

mod util;

use std::process::{Command, Stdio};

use util::console::Console;
use util::{examples, model_dir, Sandbox};

#[test]
fn pages_of_the_example_escaped_and_without_secrets() {
    let s = Sandbox::new();
    s.ok(&[
        "load",
        &examples()
            .join("sigilgate/expected.json")
            .display()
            .to_string(),
    ]);
    s.ok(&[
        "load",
        &examples()
            .join("etcd-v2-broker/expected.json")
            .display()
            .to_string(),
    ]);
    s.ok(&["put", "/notes/evil", "<script>alert('x')</script>"]);
    let schema = std::env::temp_dir().join(format!("ui-schema-{}.toml", std::process::id()));
    // Both example schemas in one: the sigilgate entities and the broker's.
    let both = format!(
        "{}\n{}",
        std::fs::read_to_string(examples().join("sigilgate/schema.toml")).unwrap(),
        std::fs::read_to_string(examples().join("broker/schema.toml")).unwrap()
    );
    std::fs::write(&schema, both).unwrap();
    let schema = schema.display().to_string();
    let c = Console::start(&s, &["--schema", &schema]);

    let (code, root) = c.get("/browse?prefix=/", &[]);
    assert_eq!(code, 200, "{root}");
    assert!(
        root.contains("sigilgate/") && root.contains("public/"),
        "{root}"
    );
    let (_, users) = c.get("/browse?prefix=/sigilgate/users/", &[]);
    assert!(
        users.contains("href=\"/object?path=/sigilgate/users/"),
        "{users}"
    );

    // An object: typed fields, a secret field masked, its references.
    let (code, user) = c.get("/object?path=/sigilgate/users/129", &[]);
    assert_eq!(code, 200, "{user}");
    assert!(
        user.contains("username") && user.contains("status"),
        "{user}"
    );
    // Each value as its type shows it: text without JSON quotes, a time as a time,
    // a number as a number.
    assert!(user.contains("<code>u_d58dcd</code>"), "{user}");
    assert!(user.contains("<time>2024-06-15T10:00:00Z</time>"), "{user}");
    assert!(user.contains("<code>5</code>"), "{user}");
    let device = "/sigilgate/users/129/devices/0c5cd43b-f53e-4c38-be5c-39319d892098";
    let key = s.ok(&["get", &format!("{device}/public_key")]);
    let (code, page) = c.get(&format!("/object?path={device}"), &[]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("secret, not shown") && !page.contains(key.trim()),
        "{page}"
    );
    let (_, page) = c.get(&format!("/key?k={device}/public_key"), &[]);
    assert!(!page.contains(key.trim()), "{page}");
    let (_, node) = c.get("/object?path=/sigilgate/nodes/10.20.0.20", &[]);
    assert_eq!(node.matches("referenced by").count(), 8, "{node}");

    // The references drawn: the node and its 8 routes, 8 arrows, a depth control.
    assert!(
        node.contains("/refs?key=/sigilgate/nodes/10.20.0.20"),
        "{node}"
    );
    let (code, drawn) = c.get("/refs?key=/sigilgate/nodes/10.20.0.20&depth=2", &[]);
    assert_eq!(code, 200, "{drawn}");
    assert!(
        drawn.contains("<svg") && drawn.contains("<select name=\"depth\""),
        "{drawn}"
    );
    assert_eq!(drawn.matches("<rect").count(), 9, "{drawn}");
    assert_eq!(drawn.matches("<line").count(), 8, "{drawn}");

    // A key and its history; a value with markup is text.
    let (_, evil) = c.get("/key?k=/notes/evil", &[]);
    assert!(
        evil.contains("&lt;script&gt;") && !evil.contains("<script>alert"),
        "{evil}"
    );
    let (_, evil_level) = c.get("/browse?prefix=/notes/", &[]);
    assert!(!evil_level.contains("<script>alert"), "{evil_level}");

    // A key's page shows the versions of its current life (point reads); the full
    // history, one link away, its earlier life and the delete too.
    for (args, _) in [
        (&["put", "/notes/v", "one"][..], 0),
        (&["put", "/notes/v", "two"], 0),
        (&["del", "/notes/v"], 0),
        (&["put", "/notes/v", "three"], 0),
        (&["put", "/notes/v", "four"], 0),
    ] {
        s.ok(args);
    }
    let (_, recent) = c.get("/key?k=/notes/v", &[]);
    let table = recent.split("id=\"history\"").nth(1).unwrap();
    assert!(
        table.contains("three") && table.contains("four"),
        "{recent}"
    );
    assert!(
        !table.contains("two") && recent.contains("history=all"),
        "{recent}"
    );
    let (_, all) = c.get("/key?k=/notes/v&history=all", &[]);
    let table = all.split("id=\"history\"").nth(1).unwrap();
    assert!(table.contains("two") && table.contains("deleted"), "{all}");

    // The path box: completions of a typed path, and going to it.
    let (_, done) = c.get("/complete?path=/sigilgate/us", &[]);
    assert_eq!(done, r#"["/sigilgate/users/"]"#);
    let (_, done) = c.get("/complete?path=/sigilgate/users/129/", &[]);
    let done: Vec<String> = serde_json::from_str(&done).unwrap();
    assert!(
        done.contains(&"/sigilgate/users/129/username".to_owned()),
        "{done:?}"
    );
    assert!(
        done.contains(&"/sigilgate/users/129/devices/".to_owned()),
        "{done:?}"
    );
    let redirect = |path: &str| {
        let (_, answer) = c.get(&format!("/go?path={path}"), &["-i"]);
        answer
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("no redirect: {answer}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        redirect("/sigilgate/users/129/username"),
        "/key?k=/sigilgate/users/129/username"
    );
    assert_eq!(
        redirect("/sigilgate/users/129"),
        "/browse?prefix=/sigilgate/users/129"
    );

    // Search, matching words marked.
    let (code, found) = c.get("/search?q=grace+hopper", &[]);
    assert_eq!(code, 200, "{found}");
    assert!(found.contains("<mark>Grace</mark>"), "{found}");

    // The broker's passwords never reach the browser.
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("etcd-v2-broker/expected.json")).unwrap(),
    )
    .unwrap();
    let mut secrets = Vec::new();
    for (k, v) in &data {
        if k.ends_with("/state") {
            let state: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
            secrets.push(
                state["admin_credentials"]["password"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let member = data
        .keys()
        .find(|k| k.contains("/members/"))
        .unwrap()
        .clone();
    for path in [
        "/browse?prefix=/service/f1/".to_owned(),
        "/key?k=/service/f1/state".to_owned(),
        format!("/key?k={member}"),
        "/browse?prefix=/service/f1/members/".to_owned(),
        format!("/search?q={}", secrets[0]),
        "/search?q=pgadmin".to_owned(),
    ] {
        let (_, body) = c.get(&path, &[]);
        // A search page repeats its query (what the user typed, not the store's).
        let body = body
            .replace(&format!("search: {}", secrets[0]), "search: …")
            .replace(&format!("value=\"{}\"", secrets[0]), "value=\"…\"");
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{path} shows a password");
        }
        assert!(
            !body.contains("postgres://"),
            "{path} shows a member's connection URL"
        );
    }
    let (_, by_password) = c.get(&format!("/search?q={}", secrets[0]), &[]);
    assert!(
        by_password.contains("<p>0 hits</p>"),
        "found by a password: {by_password}"
    );
    let (_, state) = c.get("/key?k=/service/f1/state", &[]);
    assert!(
        state.contains("pgadmin"),
        "the state's other fields are shown: {state}"
    );

    // No route writes (those that would, with --allow-writes, say it is read-only).
    for path in [
        "/key?k=/notes/evil",
        "/browse?prefix=/",
        "/object?path=/sigilgate/users/129",
        "/put",
        "/delete",
        "/create",
        "/restore",
    ] {
        let (code, _) = c.get(path, &["-X", "POST", "-d", "value=x"]);
        assert_eq!(code, 405, "POST {path}");
    }
    assert_eq!(
        s.ok(&["get", "/notes/evil"]).trim(),
        "<script>alert('x')</script>"
    );
}

#[test]
fn off_loopback_a_token_is_required_on_every_request() {
    let s = Sandbox::new();
    s.ok(&["put", "/a", "1"]);
    let (_, err) = s.expect(1, &["ui", "--listen", "0.0.0.0:0"]);
    assert!(err.contains("--token") && err.contains("loopback"), "{err}");
    let token = "t0k3n-of-the-test-console";
    std::fs::write(s.path("token"), format!("{token}\n")).unwrap();
    let file = s.path("token").display().to_string();
    let c = Console::start_on(&s, "0.0.0.0:0", &["--token", &file]);
    let (code, body) = c.get("/browse?prefix=/", &[]);
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(token));
    let (code, _) = c.get(
        "/browse?prefix=/",
        &["-H", "Authorization: Bearer wrong-token-of-the-same-len"],
    );
    assert_eq!(code, 401);
    let (code, body) = c.get(
        "/browse?prefix=/",
        &["-H", &format!("Authorization: Bearer {token}")],
    );
    assert_eq!(code, 200, "{body}");
    // Once with ?token=, then the cookie it set.
    let jar = s.path("cookies").display().to_string();
    let (code, answer) = c.get(
        &format!("/browse?prefix=/&token={token}"),
        &["-c", &jar, "-i"],
    );
    assert_eq!(code, 303, "{answer}");
    // ... redirected to the same page without the token in its address.
    assert!(answer.contains("location: /browse?prefix=/\r"), "{answer}");
    let (code, _) = c.get("/key?k=/a", &["-b", &jar]);
    assert_eq!(code, 200);
}

/// With --allow-writes: a write from the key's own form lands (a compare-and-swap on
/// the revision the page showed); one made after another writer changed the key is a
/// conflict that writes nothing; a cross-origin post and one without the form's token
/// are refused; a typed field is checked; a secret field is not writable.
#[test]
fn writes_are_compare_and_swap_from_the_console_pages_only() {
    let s = Sandbox::new();
    let schema = s.load_sigilgate();
    let c = Console::start(&s, &["--schema", &schema, "--allow-writes"]);
    let key = "/sigilgate/users/129/max_devices";
    let (_, page) = c.get(&format!("/key?k={key}"), &[]);
    let field = |name: &str| -> String {
        let at = page.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
        page[at..].split('"').next().unwrap().to_owned()
    };
    let (at, csrf) = (field("at"), field("csrf"));
    let origin = format!("Origin: http://{}", c.addr);
    let post = |body: &str, headers: &[&str]| -> u16 {
        let mut args = vec!["-X", "POST", "--data", body];
        for h in headers {
            args.extend(["-H", h]);
        }
        c.get("/put", &args).0
    };
    let form =
        |value: &str, at: &str, csrf: &str| format!("k={key}&at={at}&csrf={csrf}&value={value}");
    // Refused: another origin, no origin, a wrong token, a value of the wrong type.
    assert_eq!(
        post(&form("7", &at, &csrf), &["Origin: http://evil.example"]),
        403
    );
    assert_eq!(post(&form("7", &at, &csrf), &[]), 403);
    assert_eq!(post(&form("7", &at, "0000"), &[&origin]), 403);
    assert_eq!(post(&form("seven", &at, &csrf), &[&origin]), 422);
    assert_eq!(s.ok(&["get", key]).trim(), "5");
    // From the page: written, then found at a new revision.
    assert_eq!(post(&form("7", &at, &csrf), &[&origin]), 303);
    assert_eq!(s.ok(&["get", key]).trim(), "7");
    // Another writer changes it; the page's stale form is a conflict, nothing written.
    s.ok(&["put", key, "9"]);
    let (code, body) = c.get(
        "/put",
        &[
            "-X",
            "POST",
            "--data",
            &form("11", &at, &csrf),
            "-H",
            &origin,
        ],
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("Conflict") && body.contains("9"), "{body}");
    assert_eq!(s.ok(&["get", key]).trim(), "9");
    // Line ends as the browser sends them (CR LF) come back as the value had them.
    let note = "/notes/multi";
    s.ok(&["put", note, "one\ntwo"]);
    let (_, page) = c.get(&format!("/key?k={note}"), &[]);
    assert!(page.contains("name=\"eol\" value=\"lf\""), "{page}");
    let at = page
        .split("name=\"at\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let body = format!("k={note}&at={at}&csrf={csrf}&eol=lf&value=one%0D%0Atwo%0D%0Athree");
    assert_eq!(post(&body, &[&origin]), 303);
    assert_eq!(s.ok(&["get", note]), "one\ntwo\nthree\n");

    // A secret field is not writable from the console.
    let device_key = "/sigilgate/users/129/devices/0c5cd43b-f53e-4c38-be5c-39319d892098/public_key";
    let body = format!("k={device_key}&at=1&csrf={csrf}&value=x");
    assert_eq!(post(&body, &[&origin]), 403);
}

/// The health page: schema findings grouped by kind with links, each migration area's
/// state, and the backup's last commit with how far the store has moved on since.
#[test]
fn the_health_of_the_data() {
    let s = Sandbox::new();
    let schema = s.load_sigilgate();
    let repo = s.path("backup.git").display().to_string();
    s.ok(&["backup", "run", "--repo", &repo]);
    s.ok(&["put", "/sigilgate/users/129/max_devices", "many"]);
    s.ok(&["put", "/stray/key", "x"]);
    let migrations = examples()
        .join("sigilgate/migrations")
        .display()
        .to_string();
    let c = Console::start(
        &s,
        &[
            "--schema",
            &schema,
            "--migrations",
            &migrations,
            "--repo",
            &repo,
        ],
    );
    let (code, page) = c.get("/health", &[]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("WrongType") && page.contains("/key?k=/sigilgate/users/129/max_devices"),
        "{page}"
    );
    assert!(
        page.contains("UnknownKey") && page.contains("/key?k=/stray/key"),
        "{page}"
    );
    assert!(
        page.contains("<td>users</td>") && page.contains("<td>nodes</td>"),
        "{page}"
    );
    assert!(page.contains("2 revisions behind the store"), "{page}");

    // A key's changes in the backup, before and after side by side.
    s.ok(&["backup", "run", "--repo", &repo]);
    let (_, key) = c.get("/key?k=/sigilgate/users/129/max_devices", &[]);
    let backup = key
        .split("In the Git backup")
        .nth(1)
        .expect("the backup's history");
    assert!(
        backup.contains("<code>5</code></td><td><code>many</code>"),
        "{backup}"
    );
    assert_eq!(backup.matches("<tr><td><code>").count(), 2, "{backup}");
}

/// Live pages: a page carries the listener for its keys, and `/events` sends an event
/// with the revision when a key under the prefix changes after the page's revision.
#[test]
fn pages_hear_of_changes_to_their_keys() {
    let s = Sandbox::new();
    s.ok(&["put", "/live/a", "1"]);
    let c = Console::start(&s, &[]);
    let (_, page) = c.get("/browse?prefix=/live/", &[]);
    let at = page
        .split("entries at revision ")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        page.contains(&format!("/events?prefix=/live/&from={at}")),
        "{page}"
    );
    let listen = Command::new("curl")
        .args(["-sN", "--max-time", "5"])
        .arg(format!("http://{}/events?prefix=/live/&from={at}", c.addr))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.ok(&["put", "/elsewhere", "not under the prefix"]);
    let put = s.ok(&["put", "/live/a", "2"]);
    let revision = put
        .split("revision ")
        .nth(1)
        .unwrap()
        .trim_end_matches([')', '\n'])
        .to_owned();
    let out = listen.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    // One event, the put under the prefix (not the other key's), with its revision.
    assert_eq!(events, [revision.as_str()], "{text}");
}

/// A level with more children than a page shows is read a page at a time, the next
/// page at the first one's revision, none missed or repeated.
#[test]
fn a_large_level_is_shown_a_page_at_a_time() {
    let s = Sandbox::new();
    let keys: serde_json::Map<String, serde_json::Value> = (0..250)
        .map(|i| (format!("/many/k{i:03}"), format!("v{i}").into()))
        .collect();
    std::fs::write(s.path("many.json"), serde_json::to_string(&keys).unwrap()).unwrap();
    s.ok(&["load", &s.path("many.json").display().to_string()]);
    let c = Console::start(&s, &[]);
    let (_, first) = c.get("/browse?prefix=/many/", &[]);
    assert!(first.contains("200 entries"), "{first}");
    let next = first
        .split("href=\"/browse?prefix=/many/&at=")
        .nth(1)
        .expect("a next link");
    let next = format!(
        "/browse?prefix=/many/&at={}",
        next.split('"').next().unwrap()
    );
    s.ok(&["put", "/many/k2000", "written after the first page"]);
    let (_, second) = c.get(&next, &[]);
    assert!(
        second.contains("50 entries") && !second.contains("next 200"),
        "{second}"
    );
    assert!(first.contains(">k000<") && first.contains(">k199<") && !first.contains(">k200<"));
    assert!(second.contains(">k200<") && second.contains(">k249<") && !second.contains(">k2000<"));
}

/// Found in review: a secret field of a `backup = false` entity, a request under
/// another host name (a DNS name rebound to 127.0.0.1), framing, Strata's own keys and
/// a field the entity does not have.
#[test]
fn review_findings_stay_fixed() {
    let s = Sandbox::new();
    std::fs::write(
        s.path("schema.toml"),
        "[entities.session]\nkey = \"/sessions/{id}\"\nvars = { id = \"string\" }\nbackup = false\n\
         [entities.session.fields]\ntoken = { type = \"string\", secret = true }\nuser = { type = \"string\" }\n",
    )
    .unwrap();
    s.ok(&["put", "/sessions/s1/token", "tok-SECRET-123"]);
    s.ok(&["put", "/sessions/s1/user", "ada"]);
    let schema = s.path("schema.toml").display().to_string();
    let c = Console::start(&s, &["--schema", &schema, "--allow-writes"]);
    for path in [
        "/key?k=/sessions/s1/token",
        "/browse?prefix=/sessions/s1/",
        "/object?path=/sessions/s1",
        "/search?q=ada",
    ] {
        let (code, body) = c.get(path, &[]);
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.contains("tok-SECRET-123"), "{path} shows the secret");
    }
    let (_, search) = c.get("/search?q=tok-SECRET-123", &[]);
    assert!(search.contains("<p>0 hits</p>"), "{search}");
    // Another host name: refused, whatever it resolves to.
    let port = c.addr.rsplit(':').next().unwrap().to_owned();
    let (code, _) = c.get(
        "/browse?prefix=/",
        &["-H", &format!("Host: attacker.example:{port}")],
    );
    assert_eq!(code, 421);
    // Never framed.
    let out = Command::new("curl")
        .args(["-sI"])
        .arg(format!("http://{}/browse?prefix=/", c.addr))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.contains("x-frame-options: deny") && head.contains("frame-ancestors 'none'"),
        "{head}"
    );
    // Strata's own keys and unknown fields are not written.
    let (_, page) = c.get("/key?k=/sessions/s1/user", &[]);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let origin = format!("Origin: http://{}", c.addr);
    for (body, want) in [
        (
            format!("k=/_strata/migrations/x&at=0&csrf={csrf}&value=1"),
            403,
        ),
        (
            format!("k=/sessions/s1/nickname&at=0&csrf={csrf}&value=x"),
            422,
        ),
    ] {
        let (code, text) = c.get("/put", &["-X", "POST", "--data", &body, "-H", &origin]);
        assert_eq!(code, want, "{body}: {text}");
    }
}

/// Object create and restore from the backup, at the HTTP level: all or nothing, from
/// the console's own pages only, the restore applied only as the plan shown.
#[test]
fn create_and_restore_write_whole_and_only_as_shown() {
    let s = Sandbox::new();
    let schema = s.load_sigilgate();
    s.ok(&[
        "backup",
        "run",
        "--repo",
        "backup",
        "--schema",
        &schema,
        "--author",
        "T <t@example.com>",
    ]);
    let c = Console::start(
        &s,
        &["--schema", &schema, "--repo", "backup", "--allow-writes"],
    );
    let origin = format!("Origin: http://{}", c.addr);
    let (code, form) = c.get("/new?entity=node", &[]);
    assert_eq!(code, 200, "{form}");
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post = |path: &str, body: &str, from: &str| {
        c.get(path, &["-X", "POST", "--data", body, "-H", from])
    };
    let node = |ip: &str, role: &str| {
        format!("entity=node&csrf={csrf}&v.ip={ip}&f.grpc_path=/g&f.role={role}&f.status=up")
    };
    // Another origin, a wrong type, an IP that is not one: refused, nothing written.
    assert_eq!(
        post(
            "/create",
            &node("10.30.0.1", "core"),
            "Origin: http://evil.example"
        )
        .0,
        403
    );
    let (code, page) = post("/create", &node("10.30.0.1", "bogus"), &origin);
    assert_eq!(code, 422, "{page}");
    assert!(page.contains("role"), "{page}");
    assert_eq!(post("/create", &node("not-an-ip", "core"), &origin).0, 422);
    assert_eq!(
        s.ok(&["get", "--prefix", "/sigilgate/nodes/10.30.0.1/"]),
        ""
    );
    // Created whole; a second create of it is a conflict that changes nothing.
    assert_eq!(post("/create", &node("10.30.0.1", "core"), &origin).0, 303);
    assert_eq!(
        s.ok(&["get", "/sigilgate/nodes/10.30.0.1/role"]).trim(),
        "core"
    );
    let (code, page) = post("/create", &node("10.30.0.1", "entry"), &origin);
    assert_eq!(code, 409, "{page}");
    assert_eq!(
        s.ok(&["get", "/sigilgate/nodes/10.30.0.1/role"]).trim(),
        "core"
    );
    assert!(
        c.log()
            .contains("created /sigilgate/nodes/10.30.0.1 at revision"),
        "{}",
        c.log()
    );

    // Restore a user's changed field from the backup's commit.
    let key = "/sigilgate/users/129/max_devices";
    s.ok(&["put", key, "9"]);
    let commit = strata_testkit::git(&s.path("backup"), &["rev-parse", "HEAD"]);
    let commit = commit.trim();
    let plan_url = format!("/restore?target=/sigilgate/users/129&commit={commit}");
    let (code, plan) = c.get(&plan_url, &[]);
    assert_eq!(code, 200, "{plan}");
    assert!(plan.contains("1 put, 0 deleted"), "{plan}");
    let digest = plan
        .split("name=\"plan\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let confirm = format!("target=/sigilgate/users/129&commit={commit}&plan={digest}&csrf={csrf}");
    assert_eq!(
        post("/restore", &confirm, "Origin: http://evil.example").0,
        403
    );
    // The store moves on after the plan was shown: that plan is not applied.
    s.ok(&["put", key, "10"]);
    let (code, page) = post("/restore", &confirm, &origin);
    assert_eq!(code, 409, "{page}");
    assert_eq!(s.ok(&["get", key]).trim(), "10");
    // The plan shown again, confirmed: restored.
    let (_, plan) = c.get(&plan_url, &[]);
    let digest = plan
        .split("name=\"plan\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let confirm = format!("target=/sigilgate/users/129&commit={commit}&plan={digest}&csrf={csrf}");
    assert_eq!(post("/restore", &confirm, &origin).0, 303);
    assert_eq!(s.ok(&["get", key]).trim(), "5");
}

/// With --model the search page searches by meaning too: a paraphrase of a whiteboard
/// record that shares no word with it finds it first by meaning (and by both).
#[test]
fn the_search_box_by_meaning() {
    let s = Sandbox::new();
    s.ok(&[
        "load",
        &examples()
            .join("whiteboard/records.json")
            .display()
            .to_string(),
    ]);
    let queries: std::collections::BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("whiteboard/queries.json")).unwrap(),
    )
    .unwrap();
    let (query, node) = queries.iter().next().unwrap();
    let c = Console::start(&s, &["--model", &model_dir()]);
    let q = query.replace(' ', "+");
    for mode in ["meaning", "both"] {
        let (code, page) = c.get(&format!("/search?q={q}&mode={mode}"), &[]);
        assert_eq!(code, 200, "{page}");
        assert!(
            page.contains(&format!("value=\"{mode}\" checked")),
            "{page}"
        );
        let first = page
            .split("href=\"/key?k=")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no hit for {query:?} by {mode}: {page}"));
        assert!(
            first.contains(&format!("/nodes/{node}/")),
            "{mode}: {first}"
        );
    }
}

/// On a layered keyspace the entities page names the layer of each entity.
#[test]
fn entities_by_layer() {
    let s = Sandbox::with_store("layers:strata.toml");
    std::fs::write(
        s.path("strata.toml"),
        "[stores.ops]\nurl = \"sqlite:ops.db\"\n[stores.comms]\nurl = \"sqlite:comms.db\"\n\
         [layers]\n\"/sigilgate/\" = \"ops\"\n\"/public/\" = \"comms\"\n",
    )
    .unwrap();
    let schema = s.load_sigilgate();
    let c = Console::start(&s, &["--schema", &schema]);
    let (code, page) = c.get("/entities", &[]);
    assert_eq!(code, 200, "{page}");
    let rows: Vec<&str> = page.split("<tr>").skip(2).collect();
    let row = |entity: &str| {
        *rows
            .iter()
            .find(|r| r.contains(&format!("<td>{entity}</td>")))
            .unwrap_or_else(|| panic!("no {entity}: {page}"))
    };
    assert!(row("contact").starts_with("<td>comms</td>"), "{page}");
    assert!(row("node").starts_with("<td>ops</td>"), "{page}");
    // One count per entity: the nodes' keys.
    let nodes = s.ok(&["get", "--prefix", "/sigilgate/nodes/", "--keys-only"]);
    assert!(
        row("node").contains(&format!(
            "<td class=\"count\">{}</td>",
            nodes.lines().count()
        )),
        "{page}"
    );
}
