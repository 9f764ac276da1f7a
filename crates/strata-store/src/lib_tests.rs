//! Unit tests of the store URL and the options types (`lib.rs`).

use super::*;

/// Regression: `EtcdOptions` and `ConnectOptions` derived `Debug` with the password
/// in it. Every options type, formatted with a known password, shows none.
#[test]
fn no_options_type_shows_a_password_in_debug() {
    const PW: &str = "hunter2-Zq9";
    let connect = ConnectOptions {
        user: Some(format!("root:{PW}")),
        password: Some(PW.into()),
        key: Some("/etc/strata/client.key".into()),
        ..ConnectOptions::default()
    };
    let mut etcd = EtcdOptions::new(vec!["h:2379".into()]);
    etcd.user = Some("root".into());
    etcd.password = Some(PW.into());
    let shown = [
        format!("{connect:?}"),
        format!("{connect:#?}"),
        format!("{etcd:?}"),
        format!(
            "{:?}",
            StoreUrl::parse(&format!("etcd://root:{PW}@h:2379")).unwrap()
        ),
        format!(
            "{:?}",
            StoreUrl::parse(&format!("postgres://u:{PW}@h/db?password={PW}")).unwrap()
        ),
        format!(
            "{:?}",
            PgOptions::parse(&format!("postgres://u:{PW}@h/db")).unwrap()
        ),
        redact(&format!(
            "postgres://u:{PW}@h/db?sslmode=require&password={PW}"
        )),
    ];
    for text in shown {
        assert!(!text.contains(PW), "{text}");
    }
    // What is not secret stays visible: the user name, the key file's path.
    let text = format!("{connect:?}");
    assert!(
        text.contains("\"root\"") && text.contains("client.key") && text.contains("<redacted>"),
        "{text}"
    );
}

#[test]
fn parses_urls() {
    assert_eq!(
        StoreUrl::parse("sqlite:./x.db").unwrap(),
        StoreUrl::Sqlite("./x.db".into())
    );
    assert_eq!(
        StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
        StoreUrl::Sqlite("/tmp/x.db".into())
    );
    assert_eq!(StoreUrl::parse("mem:").unwrap(), StoreUrl::Mem);
    let etcd = StoreUrl::parse("etcd://root:s3cret@10.0.0.1:2379,h2:2379").unwrap();
    assert_eq!(
        etcd,
        StoreUrl::Etcd {
            endpoints: vec!["10.0.0.1:2379".into(), "h2:2379".into()],
            user: Some("root".into()),
            password: Some("s3cret".into()),
        }
    );
    assert_eq!(etcd.redacted(), "etcd://10.0.0.1:2379,h2:2379");
    assert!(!format!("{etcd:?}").contains("s3cret"));
    let err = StoreUrl::parse("etcd://root:s3cret@nohost")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not host:port") && !err.contains("s3cret"),
        "{err}"
    );
    let v2 = StoreUrl::parse("etcd2://root:s3cret@10.0.0.1:2379").unwrap();
    assert_eq!(
        v2,
        StoreUrl::Etcd2 {
            endpoints: vec!["10.0.0.1:2379".into()],
            user: Some("root".into()),
            password: Some("s3cret".into()),
        }
    );
    assert_eq!(v2.redacted(), "etcd2://10.0.0.1:2379");
    assert!(!format!("{v2:?}").contains("s3cret"));
    let err = StoreUrl::parse("etcd2://h:x").unwrap_err().to_string();
    assert!(err.contains("write etcd2://"), "{err}");
    assert!(!crate::redact("etcd2://root:s3cret@h:1").contains("s3cret"));
    let pg = StoreUrl::parse("postgres://app:pw@127.0.0.1:5432/meta?schema=prod").unwrap();
    // The user name stays (who connects); only the password goes.
    assert_eq!(
        pg.redacted(),
        "postgres://app@127.0.0.1:5432/meta?schema=prod"
    );
    let pg = "postgres://app@h:5432/db?password=pw&schema=prod&sslpassword=k";
    assert_eq!(redact(pg), "postgres://app@h:5432/db?schema=prod");
    assert_eq!(
        redact("postgres://app:p@ss?w@h/db?password=x"),
        "postgres://app@h/db"
    );
    let err = StoreUrl::parse("postgres://app:pw@h:5432/db?schema=Bad-Name")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("schema \"Bad-Name\"") && !err.contains("pw@"),
        "{err}"
    );
    assert_eq!(
        StoreUrl::from_endpoints("http://10.0.0.1:2379, h2:2379/").unwrap(),
        ("etcd://10.0.0.1:2379,h2:2379".to_owned(), false)
    );
    assert_eq!(
        StoreUrl::from_endpoints("https://a:2379,https://b:2379").unwrap(),
        ("etcd://a:2379,b:2379".to_owned(), true)
    );
    let err = StoreUrl::from_endpoints("https://a:2379,http://b:2379").unwrap_err();
    assert!(err.to_string().contains("mix"), "{err}");
    assert!(StoreUrl::from_endpoints("a").is_err() && StoreUrl::from_endpoints(",").is_err());
    let err = StoreUrl::parse("redis://x").unwrap_err().to_string();
    assert!(err.contains("unknown scheme \"redis\""), "{err}");
    assert!(StoreUrl::parse("sqlite:").is_err());
}

/// Found by the store_url fuzz target: `etcd://root:secret@10tcd://root:secret.1:2379`
/// parsed, with a "host" holding a second scheme and the password's text.
#[test]
fn an_etcd_endpoint_is_a_host_and_a_port_only() {
    for bad in [
        "etcd://root:secret@10tcd://root:secret.1:2379",
        "etcd://h/x:2379",
        "etcd://[::1:2379",
    ] {
        assert!(StoreUrl::parse(bad).is_err(), "{bad} parsed");
    }
    for good in [
        "etcd://127.0.0.1:2379",
        "etcd://etcd-0.internal:2379,[::1]:2379",
        "etcd://u:p@h_1:1",
    ] {
        assert!(StoreUrl::parse(good).is_ok(), "{good} did not parse");
    }
}
