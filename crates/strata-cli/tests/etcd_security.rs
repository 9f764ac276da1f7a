//! etcd with authentication and with TLS: the `strata` binary connects with the
//! etcdctl-style flags and environment, refuses clearly without them, and never prints
//! the password.

mod util;

use strata_testkit::etcd::{etcdctl, etcdctl_as, EtcdCluster, TlsFiles};
use util::Sandbox;

const PASSWORD: &str = "s3cret-Pw";

#[test]
fn user_and_password_authenticate_and_stay_secret() {
    let cluster = EtcdCluster::start(1);
    etcdctl(&cluster, &["user", "add", &format!("root:{PASSWORD}")]);
    etcdctl(&cluster, &["user", "grant-role", "root", "root"]);
    etcdctl(&cluster, &["auth", "enable"]);
    let s = Sandbox::with_store(&cluster.url());

    // Without credentials: a clear refusal.
    let (_, err) = s.expect(1, &["put", "/a", "1"]);
    assert!(
        err.contains("--user") && err.contains("--password"),
        "{err}"
    );

    // --user and --password.
    s.ok(&["--user", "root", "--password", PASSWORD, "put", "/a", "1"]);
    assert_eq!(
        etcdctl_as(
            &cluster,
            Some(&format!("root:{PASSWORD}")),
            &["get", "/a", "--print-value-only"]
        ),
        "1\n"
    );
    // --user NAME:PASSWORD, and the etcdctl environment variables.
    assert_eq!(
        s.ok(&["--user", &format!("root:{PASSWORD}"), "get", "/a"]),
        "1\n"
    );
    let out = s
        .command(&["get", "/a"])
        .env("ETCDCTL_USER", "root")
        .env("ETCDCTL_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    // Credentials in the URL work and never show in messages.
    let url = format!("etcd://root:{PASSWORD}@{}", cluster.endpoints()[0]);
    assert_eq!(s.ok(&["--store", &url, "get", "/a"]), "1\n");
    let (_, err) = s.expect(3, &["--store", &url, "get", "/missing"]);
    assert!(!err.contains(PASSWORD), "{err}");

    // A wrong password is refused, and neither password is echoed.
    let (out, err) = s.expect(
        1,
        &["--user", "root", "--password", "wrong-one", "get", "/a"],
    );
    assert!(
        !err.contains("wrong-one") && !out.contains("wrong-one"),
        "{err}"
    );
    let bad_url = format!("etcd://root:{PASSWORD}@nohost");
    let (_, err) = s.expect(1, &["--store", &bad_url, "get", "/a"]);
    assert!(
        err.contains("not host:port") && !err.contains(PASSWORD),
        "{err}"
    );
    // A user without a password is a usage problem, said before connecting.
    let (_, err) = s.expect(1, &["--user", "root", "get", "/a"]);
    assert!(err.contains("has no password"), "{err}");
}

#[test]
fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(certs.path());
    let cluster = EtcdCluster::start_tls(tls.clone());
    let s = Sandbox::with_store(&cluster.url());
    let flags = [
        "--cacert",
        tls.ca.to_str().unwrap(),
        "--cert",
        tls.cert.to_str().unwrap(),
        "--key",
        tls.key.to_str().unwrap(),
    ];
    fn with<'a>(flags: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [flags, args].concat()
    }
    s.ok(&with(&flags, &["put", "/tls/a", "secure"]));
    assert_eq!(s.ok(&with(&flags, &["get", "/tls/a"])), "secure\n");
    // The real client, over TLS too, sees what strata wrote.
    assert_eq!(
        etcdctl(&cluster, &["get", "/tls/a", "--print-value-only"]),
        "secure\n"
    );
    // Without TLS flags, or with a certificate and no key: clear errors, no hang.
    let (_, err) = s.expect(1, &["--command-timeout", "3s", "get", "/tls/a"]);
    assert!(err.contains("did not complete"), "{err}");
    let (_, err) = s.expect(
        1,
        &[
            "--cacert",
            tls.ca.to_str().unwrap(),
            "--cert",
            tls.cert.to_str().unwrap(),
            "get",
            "/x",
        ],
    );
    assert!(err.contains("needs both --cert and --key"), "{err}");
}
