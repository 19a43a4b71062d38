//! A throwaway certificate authority and a TLS client round trip over an open tunnel.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::TempDir;

/// How long [`tls_roundtrip`] waits for the handshake and for each read.
const ROUNDTRIP_TIMEOUT: Duration = Duration::from_secs(30);

/// A CA generated for one test; its PEM is also written to `ca_path`.
pub struct TestCa {
    /// The CA certificate, PEM encoded.
    pub ca_pem: String,
    /// A file holding `ca_pem`, removed when the `TestCa` is dropped.
    pub ca_path: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
    _dir: TempDir,
}

impl TestCa {
    /// Generates a CA and writes its certificate to a temp dir.
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "nono test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let ca_pem = cert.pem();
        let dir = TempDir::new("ca");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca_pem).expect("write CA PEM");
        TestCa {
            ca_pem,
            ca_path,
            cert,
            key,
            _dir: dir,
        }
    }

    /// The CA certificate, DER encoded.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server config presenting a fresh leaf signed by this CA, valid for `names`.
    ///
    /// Each name is a DNS name or an IP literal such as `127.0.0.1` (an IP SAN).
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (chain, key) = self.leaf(names);
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server cert");
        Arc::new(config)
    }

    /// A client config that trusts only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der()).expect("add CA root");
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A leaf certificate chain (leaf, CA) and its private key, for servers built elsewhere.
    pub fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("generate leaf key");
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![leaf.der().clone(), self.ca_der()], key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// The ring provider, named explicitly so no process-wide default is needed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Does a TLS handshake over `stream` for `server_name`, writes `payload`, reads the echo.
///
/// Reads until `payload.len()` bytes came back or the server closed, so it needs no half-close
/// support from whatever sits in between; returns the bytes read. Panics if the handshake fails
/// or a read stalls for 30 s.
pub fn tls_roundtrip(stream: TcpStream, ca: &TestCa, server_name: &str, payload: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(ROUNDTRIP_TIMEOUT))
        .expect("set read timeout");
    let name = ServerName::try_from(server_name.to_string()).expect("valid server name");
    let conn = rustls::ClientConnection::new(ca.client_config(), name).expect("client conn");
    let mut tls = rustls::StreamOwned::new(conn, stream);
    tls.write_all(payload)
        .expect("TLS write (handshake or payload)");
    tls.flush().expect("TLS flush");
    let mut echoed = Vec::with_capacity(payload.len());
    let mut buf = [0u8; 16 * 1024];
    while echoed.len() < payload.len() {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("TLS read after {} bytes: {e}", echoed.len()),
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    echoed
}
