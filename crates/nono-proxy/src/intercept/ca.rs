//! The interception CA: a fresh ECDSA P-256 CA per session (its key never leaves memory), or
//! an existing one loaded from PKCS#8 PEM files, and the leaf certificates it issues.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::filter::Host;

/// Longest CA validity accepted, in days.
pub const MAX_CA_VALIDITY_DAYS: u32 = 365;
/// Longest a leaf certificate is valid for (never past the CA's own end).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Leaves start this long in the past, so a client whose clock is a little behind accepts them.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The CA could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// `--proxy-ca-validity` out of range.
    #[error("proxy CA validity of {0} days is out of range: use 1 to {MAX_CA_VALIDITY_DAYS} days")]
    Validity(u32),
    /// A CA file cannot be read.
    #[error("cannot read the proxy CA {what} `{}`: {source}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A CA file holds something unusable.
    #[error("proxy CA {what} `{}`: {reason}", path.display())]
    Invalid {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Generating or signing failed.
    #[error("proxy CA: {0}")]
    Crypto(String),
}

/// A certificate authority that issues leaf certificates for intercepted hosts.
pub struct CertAuthority {
    /// The CA as rcgen needs it to sign (for a loaded CA, a re-signed copy with the same
    /// subject and key; clients only ever see `chain_der`).
    issuer: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as clients must trust it.
    der: CertificateDer<'static>,
    pem: String,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn crypto(e: impl std::fmt::Display) -> CaError {
    CaError::Crypto(e.to_string())
}

impl CertAuthority {
    /// A fresh ECDSA P-256 CA valid for `validity_days` (1 to [`MAX_CA_VALIDITY_DAYS`]).
    pub fn generate(validity_days: u32) -> Result<CertAuthority, CaError> {
        if !(1..=MAX_CA_VALIDITY_DAYS).contains(&validity_days) {
            return Err(CaError::Validity(validity_days));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "nono session proxy CA");
        dn.push(DnType::OrganizationName, "nono");
        params.distinguished_name = dn;
        // Only leaves under it, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::from_secs(u64::from(validity_days) * 24 * 3600);
        params.serial_number = Some(random_serial());
        let not_after = params.not_after;
        let cert = params.self_signed(&key).map_err(crypto)?;
        Ok(CertAuthority {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: cert,
            key,
            not_after,
        })
    }

    /// An existing CA: a PEM certificate with CA basic constraints and the PKCS#8 PEM key
    /// that belongs to it.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertAuthority, CaError> {
        let read = |what, path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|source| CaError::Read {
                    what,
                    path: path.to_path_buf(),
                    source,
                })
        };
        let cert_bad = |reason: String| CaError::Invalid {
            what: "certificate",
            path: cert_path.to_path_buf(),
            reason,
        };
        let key_bad = |reason: String| CaError::Invalid {
            what: "key",
            path: key_path.to_path_buf(),
            reason,
        };
        let cert_pem = read("certificate", cert_path)?;
        let key_pem = read("key", key_path)?;
        let der = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .next()
            .ok_or_else(|| cert_bad("holds no PEM certificate".into()))?
            .map_err(|e| cert_bad(format!("is not valid PEM: {e}")))?;
        let key_text =
            std::str::from_utf8(&key_pem).map_err(|_| key_bad("is not PEM text".into()))?;
        if !key_text.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(key_bad(
                "is not a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`); convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
            ));
        }
        let key =
            KeyPair::from_pem(key_text).map_err(|e| key_bad(format!("cannot be used: {e}")))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| cert_bad(format!("is not a valid X.509 certificate: {e}")))?;
        let is_ca = x509
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(cert_bad(
                "is not a CA certificate (no basicConstraints CA:TRUE); give the certificate of a CA, not of a server".into(),
            ));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(key_bad(format!(
                "does not belong to the certificate `{}` (their public keys differ)",
                cert_path.display()
            )));
        }
        let now = OffsetDateTime::now_utc();
        let not_after = x509.validity().not_after.to_datetime();
        if x509.validity().not_before.to_datetime() > now || not_after <= now {
            return Err(cert_bad(format!(
                "is not valid now (valid {} to {})",
                x509.validity().not_before,
                x509.validity().not_after
            )));
        }
        let params = CertificateParams::from_ca_cert_der(&der)
            .map_err(|e| cert_bad(format!("cannot be used to sign: {e}")))?;
        let issuer = params.self_signed(&key).map_err(crypto)?;
        let pem = String::from_utf8_lossy(&cert_pem).into_owned();
        Ok(CertAuthority {
            der: der.into_owned(),
            pem,
            issuer,
            key,
            not_after,
        })
    }

    /// The CA certificate in PEM, for the trust bundle.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// A leaf certificate and key for `host` (a DNS name, or an IP literal as an IP SAN), valid
    /// for [`LEAF_VALIDITY`] but never past the CA. Returns the key and when it expires.
    pub fn issue(&self, host: &Host) -> Result<(Arc<CertifiedKey>, OffsetDateTime), CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let (san, cn) = match host {
            Host::Ip(ip) => (SanType::IpAddress(*ip), ip.to_string()),
            Host::Name(n) => (
                SanType::DnsName(n.clone().try_into().map_err(crypto)?),
                n.clone(),
            ),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = (now + LEAF_VALIDITY).min(self.not_after);
        params.serial_number = Some(random_serial());
        let not_after = params.not_after;
        let leaf = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(crypto)?;
        let pkcs8 = Zeroizing::new(key.serialize_der());
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
        let signing = rustls::crypto::ring::sign::any_ecdsa_type(&private).map_err(crypto)?;
        let chain = vec![leaf.der().clone(), self.der.clone()];
        Ok((Arc::new(CertifiedKey::new(chain, signing)), not_after))
    }
}

fn random_serial() -> rcgen::SerialNumber {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // Positive: the top bit clear.
    bytes[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nono-ca-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn ca_files(dir: &Path, is_ca: bool) -> (PathBuf, PathBuf, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["test.example".to_string()]).unwrap();
        if is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let cert = p.self_signed(&key).unwrap();
        let tag = if is_ca { "ca" } else { "leaf" };
        (
            write(dir, &format!("{tag}.pem"), &cert.pem()),
            write(dir, &format!("{tag}.key"), &key.serialize_pem()),
            key,
        )
    }

    #[test]
    fn validity_range_is_enforced() {
        assert!(matches!(
            CertAuthority::generate(0),
            Err(CaError::Validity(0))
        ));
        assert!(matches!(
            CertAuthority::generate(366),
            Err(CaError::Validity(366))
        ));
        let ca = CertAuthority::generate(365).unwrap();
        let days = (ca.not_after() - OffsetDateTime::now_utc()).whole_days();
        assert!((364..=365).contains(&days), "{days}");
    }

    #[test]
    fn leaves_chain_to_the_ca_and_never_outlive_it() {
        let ca = CertAuthority::generate(1).unwrap();
        let (leaf, until) = ca.issue(&Host::Name("api.example.com".into())).unwrap();
        assert_eq!(leaf.cert.len(), 2);
        assert!(until <= ca.not_after());
        let (_, x) = x509_parser::parse_x509_certificate(&leaf.cert[0]).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&leaf.cert[1]).unwrap();
        assert_eq!(x.issuer(), c.subject());
        assert!(!x.is_ca());
        let sans = x.subject_alternative_name().unwrap().unwrap();
        assert!(format!("{:?}", sans.value).contains("api.example.com"));
        let (ip_leaf, _) = ca.issue(&Host::Ip("10.1.2.3".parse().unwrap())).unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(&ip_leaf.cert[0]).unwrap();
        let sans = x.subject_alternative_name().unwrap().unwrap();
        assert!(
            format!("{:?}", sans.value).contains("IPAddress"),
            "{sans:?}"
        );
    }

    #[test]
    fn loading_checks_the_pair_and_the_ca_flag() {
        let dir = tmp("load");
        let (cert, key, _) = ca_files(&dir, true);
        let ca = CertAuthority::load(&cert, &key).unwrap();
        assert!(ca.cert_pem().contains("BEGIN CERTIFICATE"));
        ca.issue(&Host::Name("x.example".into())).unwrap();

        let (leaf_cert, leaf_key, _) = ca_files(&dir, false);
        let e = CertAuthority::load(&leaf_cert, &leaf_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CA certificate"), "{e}");

        let e = CertAuthority::load(&cert, &leaf_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not belong"), "{e}");

        let e = CertAuthority::load(&dir.join("missing.pem"), &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the proxy CA certificate"), "{e}");

        let sec1 = write(
            &dir,
            "sec1.key",
            "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n",
        );
        let e = CertAuthority::load(&cert, &sec1).unwrap_err().to_string();
        assert!(e.contains("PKCS#8"), "{e}");
        let junk = write(&dir, "junk.pem", "hello");
        let e = CertAuthority::load(&junk, &key).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
