//! TLS for PostgreSQL connections, on the rustls that etcd-client already brings (with
//! its ring provider): no second TLS stack and no OpenSSL. This module owns the client
//! side's configuration: reading the PEM files a URL names into one rustls config, the
//! three levels of checking the server's certificate (nothing, the chain, the chain and
//! the host name), and naming a failed handshake. The tokio-postgres adapter and
//! channel binding are `tls_stream.rs`'s; whether and when to use TLS at all is
//! `connect.rs`'s decision.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::connect::ConnectError;
use super::options::{PgTls, SslMode};

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Encryption only (`prefer`, `require` without `sslrootcert`).
    Nothing,
    /// The chain up to `sslrootcert` (`verify-ca`, and any mode given `sslrootcert`).
    Chain,
    /// The chain, and the certificate must name the host (`verify-full`).
    ChainAndHost,
}

/// Makes the TLS sessions of one store; clones share one rustls config.
#[derive(Clone)]
pub(super) struct MakeRustls {
    pub(super) config: Arc<ClientConfig>,
    check: Check,
    root: Option<PathBuf>,
}

impl std::fmt::Debug for MakeRustls {
    // Not derived: the config holds the client key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeRustls")
            .field("check", &self.check)
            .field("root", &self.root)
            .finish()
    }
}

impl MakeRustls {
    /// Reads the files `tls` names and builds the config; an error names the file.
    pub(super) fn new(tls: &PgTls) -> Result<Self, ConnectError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // libpq: with a root certificate every mode that uses TLS checks the chain.
        let check = match (tls.mode, &tls.root_cert) {
            (SslMode::Disable, _) => Check::Nothing,
            (SslMode::VerifyFull, _) => Check::ChainAndHost,
            (SslMode::VerifyCa, _) | (_, Some(_)) => Check::Chain,
            (_, None) => Check::Nothing,
        };
        let root = tls.root_cert.clone().filter(|_| check != Check::Nothing);
        let verifier: Arc<dyn ServerCertVerifier> = match &root {
            // `PgOptions::parse` refuses this too; a hand-built `PgTls` must not get
            // an unchecked session by leaving the root out.
            None if check != Check::Nothing => {
                return Err(ConnectError::NoRootCertificate { mode: tls.mode })
            }
            Some(path) => {
                let roots = load_roots(path)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| bad_file("sslrootcert", path, e.to_string()))?;
                if check == Check::ChainAndHost {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
            None => Arc::new(NoCheck(provider.clone())),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) if tls.mode != SslMode::Disable => builder
                .with_client_auth_cert(load_certs("sslcert", cert)?, load_key(key)?)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => ConnectError::KeyMismatch {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    other => bad_file(
                        "sslkey",
                        key,
                        format!("holds a key rustls cannot use ({other}): use an RSA, ECDSA (P-256, P-384) or Ed25519 key"),
                    ),
                })?,
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustls {
            config: Arc::new(config),
            check,
            root,
        })
    }

    /// Words a failed handshake with `host`.
    pub(super) fn describe(&self, host: &str, err: io::Error) -> ConnectError {
        let tls = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        let root = || self.root.clone().unwrap_or_default();
        match tls {
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                CertificateError::NotValidForNameContext { presented, .. } => {
                    wrong_host(host, presented)
                }
                CertificateError::NotValidForName => wrong_host(host, &[]),
                CertificateError::UnknownIssuer => ConnectError::UntrustedCertificate {
                    root: root(),
                    reason: "its issuer is not among them".into(),
                },
                CertificateError::BadSignature => ConnectError::UntrustedCertificate {
                    root: root(),
                    reason: "its signature does not verify with them".into(),
                },
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => ConnectError::CertificateExpired {
                    detail: c.to_string(),
                },
                other => ConnectError::Handshake {
                    host: host.to_owned(),
                    reason: format!("the server's certificate was refused: {other}"),
                },
            },
            Some(rustls::Error::AlertReceived(alert)) => {
                refused_alert(alert).unwrap_or_else(|| ConnectError::Handshake {
                    host: host.to_owned(),
                    reason: format!("the server sent the TLS alert {alert:?}"),
                })
            }
            _ => ConnectError::Handshake {
                host: host.to_owned(),
                reason: err.to_string(),
            },
        }
    }
}

fn wrong_host(host: &str, presented: &[String]) -> ConnectError {
    // webpki lists the names as `DnsName("db")` and `IpAddress(10.0.0.1)`.
    let bare = |name: &String| {
        let inner = name
            .split_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .unwrap_or(name);
        inner.trim_matches('"').to_owned()
    };
    let names: Vec<String> = presented.iter().map(bare).collect();
    ConnectError::WrongHost {
        host: host.to_owned(),
        presented: if names.is_empty() {
            "no name in subjectAltName, and a name in the CN alone does not count".into()
        } else {
            format!("only {}", names.join(", "))
        },
        san: match host.parse::<std::net::IpAddr>() {
            Ok(_) => format!("IP:{host}"),
            Err(_) => format!("DNS:{host}"),
        },
    }
}

/// A TLS alert by which the server refuses this client's certificate. Under TLS 1.3 the
/// server checks it after the client's side of the handshake is done, so the alert may
/// arrive with the first read: `connect.rs` looks for it in any connect error.
pub(super) fn refused_alert(alert: &rustls::AlertDescription) -> Option<ConnectError> {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
    )
    .then(|| ConnectError::ClientCertificateRefused {
        alert: format!("{alert:?}"),
    })
}

fn bad_file(param: &'static str, path: &Path, problem: String) -> ConnectError {
    ConnectError::BadFile {
        param,
        path: path.to_owned(),
        problem,
    }
}

fn read(param: &'static str, path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::ReadFile {
        param,
        path: path.to_owned(),
        source,
    })
}

/// What went wrong in a PEM file, without quoting it (it may hold a key).
fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => "holds no PEM section of the expected kind".into(),
        E::MissingSectionEnd { .. } => "has a PEM section without its -----END line".into(),
        E::IllegalSectionStart { .. } => "has a malformed -----BEGIN line".into(),
        E::Base64Decode(_) => "has a PEM section that is not valid base64".into(),
        _ => "is not valid PEM".into(),
    }
}

fn load_certs(
    param: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let pem = read(param, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(param, path, pem_problem(e)))?;
    if certs.is_empty() {
        return Err(bad_file(
            param,
            path,
            "holds no certificate (no -----BEGIN CERTIFICATE----- section): give a PEM certificate file".into(),
        ));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("sslrootcert", path)? {
        roots.add(cert).map_err(|e| {
            bad_file(
                "sslrootcert",
                path,
                format!("holds a certificate that cannot be used as a CA: {e}"),
            )
        })?;
    }
    Ok(roots)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConnectError> {
    let pem = read("sslkey", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        bad_file(
            "sslkey",
            path,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "holds no unencrypted private key (PKCS#8, PKCS#1 or SEC1 PEM): give the key \
                     file of sslcert, decrypted (openssl pkey -in KEY -out PLAIN_KEY)"
                        .into()
                }
                other => pem_problem(other),
            },
        )
    })
}

/// `require`/`prefer` without a root certificate: accepts any certificate (as libpq
/// does) but still checks that the server holds its key.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full webpki check, except that the host name need not match. (The
/// webpki verifier checks the chain before the name, so a name error means the chain held.)
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_without_a_root_certificate_are_refused() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let tls = PgTls {
                mode,
                root_cert: None,
                cert: None,
                key: None,
            };
            let err = MakeRustls::new(&tls).unwrap_err();
            assert!(
                matches!(err, ConnectError::NoRootCertificate { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn wrong_host_lists_the_names_bare_and_suggests_the_right_entry() {
        let presented = [
            "DnsName(\"db.internal\")".to_owned(),
            "IpAddress(10.0.0.5)".to_owned(),
        ];
        let text = wrong_host("10.0.0.6", &presented).to_string();
        assert!(
            text.contains("it names only db.internal, 10.0.0.5"),
            "{text}"
        );
        assert!(text.contains("subjectAltName=IP:10.0.0.6"), "{text}");
        let text = wrong_host("db", &[]).to_string();
        assert!(
            text.contains("no name in subjectAltName") && text.contains("DNS:db"),
            "{text}"
        );
    }
}
