//! A CA made for the run, a server certificate for `localhost`, and a client that trusts it.

use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The server name the TLS sink presents and the client checks.
pub const SERVER_NAME: &str = "localhost";

/// Matching TLS configs for the sink (server) and the bench client.
pub struct TlsPair {
    /// Presents a leaf for [`SERVER_NAME`] signed by the run's CA.
    pub server: Arc<rustls::ServerConfig>,
    /// Trusts only the run's CA.
    pub client: Arc<rustls::ClientConfig>,
}

impl TlsPair {
    /// The client config, offering ALPN `http/1.1`.
    pub fn client_with_alpn(&self) -> Arc<rustls::ClientConfig> {
        let mut config = (*self.client).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Generates a CA and a leaf for [`SERVER_NAME`] and `127.0.0.1`.
pub fn make_pair() -> Result<TlsPair> {
    make_for(&[SERVER_NAME, "127.0.0.1"]).map(|(pair, _)| pair)
}

/// Generates a CA and a leaf for `names` (DNS names, wildcards or IPs); returns the configs and
/// the CA certificate as PEM, for processes outside the bench that must trust it.
pub fn make_for(names: &[&str]) -> Result<(TlsPair, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let ca_key = KeyPair::generate().context("generate CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nono-bench CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).context("self-sign CA")?;

    let leaf_key = KeyPair::generate().context("generate leaf key")?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf_params = CertificateParams::new(names).context("leaf params")?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .context("sign leaf")?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("server protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .context("server certificate")?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).context("trust CA")?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("client protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let pair = TlsPair {
        server: Arc::new(server),
        client: Arc::new(client),
    };
    Ok((pair, ca.pem()))
}
