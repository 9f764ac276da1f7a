//! The adapter between tokio-postgres and rustls: `MakeTlsConnect` and `TlsConnect` on
//! [`MakeRustls`] (one handshake per connection, with tokio-rustls), and the session
//! stream, whose `channel_binding` gives SCRAM-SHA-256-PLUS the RFC 5929
//! `tls-server-end-point` hash, read from the server certificate's signature algorithm
//! with a few lines of DER. What the handshake checks is `tls.rs`'s.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;

use super::connect::ConnectError;
use super::tls::MakeRustls;

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = ConnectError;

    // Never fails: tokio-postgres calls this for every connection, even one that will
    // not use TLS (a Unix socket has no host name), so a bad name is reported by
    // `connect`, which runs only when TLS is really used.
    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, ConnectError> {
        Ok(RustlsConnect {
            make: self.clone(),
            host: domain.to_owned(),
        })
    }
}

/// One TLS handshake, for one host.
#[derive(Debug)]
pub(super) struct RustlsConnect {
    make: MakeRustls,
    host: String,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, ConnectError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name =
                ServerName::try_from(self.host.clone()).map_err(|_| ConnectError::Handshake {
                    host: self.host.clone(),
                    reason: "it is neither a DNS name nor an IP address, so TLS cannot check it"
                        .into(),
                })?;
            tokio_rustls::TlsConnector::from(self.make.config.clone())
                .connect(name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| self.make.describe(&self.host, e))
        })
    }
}

/// A TLS session to the server.
#[derive(Debug)]
pub(super) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// RFC 5929 `tls-server-end-point`: the hash of the server's certificate, with the hash
/// of its signature algorithm (SHA-256 for MD5 and SHA-1). `None` for algorithms without
/// one (RSA-PSS, Ed25519): the server cannot bind those either, so SCRAM goes without.
fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use ring::digest;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03]; // 1.2.840.10045.4.3
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]; // 1.2.840.10045.4.1
    let oid = signature_algorithm(cert)?;
    let algorithm = match oid {
        // md5WithRSA (4), sha1WithRSA (5), sha256WithRSA (11)
        [rsa @ .., 4 | 5 | 11] if rsa == RSA => &digest::SHA256,
        [rsa @ .., 12] if rsa == RSA => &digest::SHA384,
        [rsa @ .., 13] if rsa == RSA => &digest::SHA512,
        _ if oid == ECDSA_SHA1 => &digest::SHA256,
        [ec @ .., 2] if ec == ECDSA_SHA2 => &digest::SHA256,
        [ec @ .., 3] if ec == ECDSA_SHA2 => &digest::SHA384,
        [ec @ .., 4] if ec == ECDSA_SHA2 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, cert).as_ref().to_vec())
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280: `SEQUENCE { tbsCertificate,
/// signatureAlgorithm SEQUENCE { OID, … }, signature }`).
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der_next(cert)? else {
        return None;
    };
    let (0x30, _, rest) = der_next(cert)? else {
        return None;
    };
    let (0x30, algorithm, _) = der_next(rest)? else {
        return None;
    };
    match der_next(algorithm)? {
        (0x06, oid, _) => Some(oid),
        _ => None,
    }
}

/// Splits one DER element off `der`: its tag, its contents, and what follows it.
fn der_next(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes.iter().fold(0, |acc, &b| acc << 8 | usize::from(b))
    };
    (rest.len() >= len).then(|| {
        let (contents, after) = rest.split_at(len);
        (tag, contents, after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate-shaped DER value: `SEQUENCE { SEQUENCE {…tbs…}, SEQUENCE { OID },
    /// BIT STRING }`, with a tbs long enough to need a long-form length.
    fn cert_with(oid: &[u8]) -> Vec<u8> {
        let tbs_body = vec![0x05; 300];
        let mut tbs = vec![0x30, 0x82, 0x01, 0x2c];
        tbs.extend(&tbs_body);
        let mut alg = vec![0x30, oid.len() as u8 + 2, 0x06, oid.len() as u8];
        alg.extend(oid);
        let sig = [0x03, 0x02, 0x00, 0xff];
        let body: Vec<u8> = [tbs, alg, sig.to_vec()].concat();
        let mut cert = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        cert.extend(body);
        cert
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        let sha384_ecdsa = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let sha1_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        let ed25519 = [0x2b, 0x65, 0x70];
        let cert = cert_with(&sha256_rsa);
        assert_eq!(signature_algorithm(&cert), Some(&sha256_rsa[..]));
        let want = ring::digest::digest(&ring::digest::SHA256, &cert);
        assert_eq!(tls_server_end_point(&cert).unwrap(), want.as_ref());
        assert_eq!(
            tls_server_end_point(&cert_with(&sha384_ecdsa))
                .unwrap()
                .len(),
            48
        );
        assert_eq!(
            tls_server_end_point(&cert_with(&sha1_rsa)).unwrap().len(),
            32
        );
        assert_eq!(tls_server_end_point(&cert_with(&ed25519)), None);
    }

    #[test]
    fn malformed_der_gives_no_binding_and_no_panic() {
        let cert = cert_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]);
        for cut in 0..cert.len() {
            assert_eq!(tls_server_end_point(&cert[..cut]), None, "cut at {cut}");
        }
        assert_eq!(der_next(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
