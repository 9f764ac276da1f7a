//! The PostgreSQL store URL, `postgres://user[:password]@host:port/db[?param=value&…]`:
//! Strata's own `schema`, and the libpq parameters that tokio-postgres does not read
//! itself — `sslmode` (all six of libpq's modes), `sslrootcert`, `sslcert`, `sslkey` and
//! `connect_timeout`, each falling back to libpq's environment variable (`PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGCONNECT_TIMEOUT`) when the URL does not
//! set it. Every other parameter goes to `tokio_postgres::Config` unchanged. This module
//! only parses and validates: it reads no file (the TLS files are read by `tls.rs` when
//! the store connects) and opens no connection.

use std::path::PathBuf;
use std::time::Duration;

use strata_core::{Error, Result};

/// `connect_timeout` when neither the URL nor `PGCONNECT_TIMEOUT` sets one. (libpq waits
/// forever by default; a store that never answers should not hang a command.)
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`: whether to use TLS and how much of the server's certificate to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain TCP; TLS only if the server refuses the plain connection.
    Allow,
    /// TLS if the server offers it, else plain (libpq's default). A failed handshake or a
    /// server that refuses the TLS session is retried in plain TCP.
    Prefer,
    /// TLS or fail, without checking the certificate — unless `sslrootcert` is given:
    /// then, as in libpq, the chain is checked as with `verify-ca`.
    Require,
    /// TLS, with the certificate chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS, with the chain checked and the certificate required to name the host.
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether this mode fails rather than connect without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings of one store URL: the mode and the paths of the PEM files (not
/// their contents; nothing secret is held here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `sslrootcert`: the CA certificates the server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: the client certificate (chain), for `cert` authentication.
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key, unencrypted.
    pub key: Option<PathBuf>,
}

/// A parsed `postgres://` URL: the connection settings, the schema and TLS.
#[derive(Clone)]
pub struct PgOptions {
    /// Host, port, user, password, database and the other libpq parameters.
    /// Its own `ssl_mode` is ignored: `tls.mode` decides each attempt's.
    pub config: tokio_postgres::Config,
    pub schema: String,
    pub tls: PgTls,
    /// The limit on each connection attempt, from the TCP connect through the TLS
    /// handshake to authentication; `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// How long one statement may run (the server's `statement_timeout`, set on each
    /// connection) and how long a watch keeps trying to reach a server that went away
    /// before it ends with an error; `None`: no statement limit, 60 s for a watch.
    pub command_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgOptions {
    // By hand, so that no password can appear.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("schema", &self.schema)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The parameters this module takes out of the URL, with their environment variables.
const OURS: [(&str, Option<&str>); 6] = [
    ("schema", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
];

impl PgOptions {
    /// Parses a URL; parameters the URL leaves out come from libpq's environment variables.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_with_env(url, |name| std::env::var(name).ok())
    }

    /// [`PgOptions::parse`] with the environment given as a lookup function.
    pub fn parse_with_env(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: crate::redact(url),
            reason,
        };
        // The query starts after the credentials, which may hold a raw `?` (as in
        // `crate::redact`); they end at the last `@` before the first `/`, so that an
        // `@` in a parameter (a file path) does not count.
        let authority = url.find("://").map_or(0, |i| i + 3);
        let path = url[authority..]
            .find('/')
            .map_or(url.len(), |i| authority + i);
        let from = url[authority..path]
            .rfind('@')
            .map_or(authority, |i| authority + i);
        let (base, query) = match url[from..].find('?') {
            Some(q) => (&url[..from + q], &url[from + q + 1..]),
            None => (url, ""),
        };
        let mut found: Vec<(&str, String)> = Vec::new();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            if name == "sslpassword" {
                return Err(invalid(
                    "sslpassword (an encrypted client key) is not supported: decrypt the key \
                     (openssl pkey -in KEY -out PLAIN_KEY) and give that file as sslkey"
                        .into(),
                ));
            }
            if OURS.iter().any(|(n, _)| *n == name) {
                let value = percent_decode(raw)
                    .ok_or_else(|| invalid(format!("{name}: the value is not valid %-encoding")))?;
                found.push((name, value));
            } else {
                rest.push(pair);
            }
        }
        // (value, where it came from) of one of our parameters; empty counts as unset.
        let param = |name: &str| -> Option<(String, String)> {
            let env_name = OURS.iter().find(|(n, _)| *n == name).and_then(|(_, e)| *e);
            found
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(n, v)| (v.clone(), (*n).to_owned()))
                .or_else(|| env_name.and_then(|e| env(e).map(|v| (v, e.to_owned()))))
                .filter(|(v, _)| !v.is_empty())
        };

        let schema = found
            .iter()
            .rev()
            .find(|(n, _)| *n == "schema")
            .map_or_else(|| "strata".to_owned(), |(_, v)| v.clone());
        let valid = !schema.is_empty()
            && schema.len() <= 40
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(invalid(format!(
                "schema {schema:?}: use lower-case letters, digits and _ (at most 40), not starting with a digit"
            )));
        }

        let mode = match param("sslmode") {
            None => SslMode::Prefer,
            Some((value, origin)) => SslMode::ALL
                .into_iter()
                .find(|m| m.as_str() == value)
                .ok_or_else(|| {
                    invalid(format!(
                        "{origin} {value:?}: use disable, allow, prefer (the default), require, \
                         verify-ca or verify-full"
                    ))
                })?,
        };
        let path = |name: &str| param(name).map(|(v, origin)| (PathBuf::from(v), origin));
        let root_cert = path("sslrootcert");
        let cert = path("sslcert");
        let key = path("sslkey");
        // libpq ignores the files when it will not use TLS; so does this.
        if mode != SslMode::Disable {
            if let Some((root, origin)) = &root_cert {
                if root.as_os_str() == "system" {
                    return Err(invalid(format!(
                        "{origin}=system (the operating system's CA store) is not supported: \
                         give the file of the CA certificate that signed the server's certificate"
                    )));
                }
            }
            if root_cert.is_none() && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
                return Err(invalid(format!(
                    "sslmode={mode} needs the CA certificate to check the server's certificate \
                     against: set sslrootcert=FILE (or PGSSLROOTCERT), or use sslmode=require \
                     to encrypt without checking"
                )));
            }
            match (&cert, &key) {
                (Some((_, origin)), None) => {
                    return Err(invalid(format!(
                        "{origin} is set but sslkey is not: give the client certificate's private \
                         key as sslkey (or PGSSLKEY)"
                    )))
                }
                (None, Some((_, origin))) => {
                    return Err(invalid(format!(
                        "{origin} is set but sslcert is not: give the client certificate as \
                         sslcert (or PGSSLCERT)"
                    )))
                }
                _ => {}
            }
        }
        let connect_timeout = match param("connect_timeout") {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some((value, origin)) => {
                let secs: i64 = value.trim().parse().map_err(|_| {
                    invalid(format!(
                        "{origin} {value:?}: give whole seconds, e.g. connect_timeout=10 (0 waits forever)"
                    ))
                })?;
                // libpq: zero or negative waits forever, and less than 2 s counts as 2 s.
                (secs > 0).then(|| Duration::from_secs(secs.max(2) as u64))
            }
        };

        let base = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let config: tokio_postgres::Config = base.parse().map_err(|e: tokio_postgres::Error| {
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            invalid(format!(
                "{e}{detail}; write postgres://user[:password]@host:port/db[?param=value&…]"
            ))
        })?;
        Ok(PgOptions {
            config,
            schema,
            tls: PgTls {
                mode,
                root_cert: root_cert.map(|(p, _)| p),
                cert: cert.map(|(p, _)| p),
                key: key.map(|(p, _)| p),
            },
            connect_timeout,
            command_timeout: None,
        })
    }
}

/// Decodes `%XX` escapes (as libpq does in URL parameters); `None` if malformed.
fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(strata_core::key::percent_decode(text)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, env: &[(&str, &str)]) -> Result<PgOptions> {
        PgOptions::parse_with_env(url, |name| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    const URL: &str = "postgres://app:s3cret@db:5432/meta";

    #[test]
    fn defaults_are_libpq_prefer_and_ten_seconds() {
        let opts = parse(URL, &[]).unwrap();
        assert_eq!(opts.tls.mode, SslMode::Prefer);
        assert_eq!(opts.tls.root_cert, None);
        assert_eq!(opts.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(opts.schema, "strata");
    }

    #[test]
    fn url_parameters_win_over_the_environment() {
        let env = [
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/env/ca.pem"),
            ("PGSSLCERT", "/env/c.pem"),
            ("PGSSLKEY", "/env/c.key"),
            ("PGCONNECT_TIMEOUT", "30"),
        ];
        let opts = parse(
            &format!(
                "{URL}?schema=s&sslmode=verify-full&sslrootcert=/u/ca%20x.pem&connect_timeout=1"
            ),
            &env,
        )
        .unwrap();
        assert_eq!(opts.tls.mode, SslMode::VerifyFull);
        assert_eq!(opts.tls.root_cert, Some("/u/ca x.pem".into()));
        assert_eq!(opts.tls.cert, Some("/env/c.pem".into()));
        assert_eq!(opts.tls.key, Some("/env/c.key".into()));
        // libpq counts 1 s as 2 s.
        assert_eq!(opts.connect_timeout, Some(Duration::from_secs(2)));
        let opts = parse(URL, &env).unwrap();
        assert_eq!(opts.tls.mode, SslMode::Require);
        assert_eq!(opts.tls.root_cert, Some("/env/ca.pem".into()));
        assert_eq!(opts.connect_timeout, Some(Duration::from_secs(30)));
        let opts = parse(&format!("{URL}?connect_timeout=0"), &env).unwrap();
        assert_eq!(opts.connect_timeout, None);
    }

    #[test]
    fn other_parameters_still_reach_tokio_postgres() {
        let opts = parse(
            &format!("{URL}?application_name=strata&sslmode=disable&channel_binding=disable"),
            &[],
        )
        .unwrap();
        assert_eq!(opts.config.get_application_name(), Some("strata"));
        assert_eq!(opts.tls.mode, SslMode::Disable);
    }

    #[test]
    fn an_at_sign_in_a_file_path_or_a_question_mark_in_the_password_is_no_trouble() {
        let opts = parse(
            "postgres://app:pa?ss@db/meta?sslmode=require&sslrootcert=/home/me@corp/ca.pem",
            &[],
        )
        .unwrap();
        assert_eq!(opts.tls.root_cert, Some("/home/me@corp/ca.pem".into()));
        assert_eq!(opts.config.get_password(), Some(&b"pa?ss"[..]));
        assert_eq!(opts.config.get_dbname(), Some("meta"));
    }

    #[test]
    fn bad_settings_say_what_to_write_and_never_show_the_password() {
        let cases = [
            (
                format!("{URL}?sslmode=verify_full"),
                &[][..],
                "use disable, allow, prefer",
            ),
            (
                URL.to_owned(),
                &[("PGSSLMODE", "strict")][..],
                "PGSSLMODE \"strict\"",
            ),
            (
                format!("{URL}?sslmode=verify-ca"),
                &[][..],
                "set sslrootcert=FILE",
            ),
            (
                format!("{URL}?sslmode=require&sslrootcert=system"),
                &[][..],
                "not supported",
            ),
            (
                format!("{URL}?sslcert=/c.pem"),
                &[][..],
                "sslcert is set but sslkey is not",
            ),
            (
                URL.to_owned(),
                &[("PGSSLKEY", "/k")][..],
                "PGSSLKEY is set but sslcert is not",
            ),
            (
                format!("{URL}?connect_timeout=ten"),
                &[][..],
                "give whole seconds",
            ),
            (
                format!("{URL}?sslpassword=hunter2"),
                &[][..],
                "decrypt the key",
            ),
            (
                format!("{URL}?sslcrl=/x"),
                &[][..],
                "unknown option `sslcrl`",
            ),
        ];
        for (url, env, want) in cases {
            let err = parse(&url, env).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
            assert!(!err.contains("s3cret") && !err.contains("hunter2"), "{err}");
        }
        // sslmode=disable ignores the files, as libpq does.
        assert!(parse(&format!("{URL}?sslmode=disable&sslcert=/c.pem"), &[]).is_ok());
    }

    #[test]
    fn debug_shows_settings_but_no_password() {
        let opts = parse(&format!("{URL}?sslmode=require"), &[]).unwrap();
        let debug = format!("{opts:?}");
        assert!(
            debug.contains("Require") && debug.contains("meta"),
            "{debug}"
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
