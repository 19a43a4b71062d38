//! The trust bundle clients of an intercepting proxy need: the system roots (or the parent's
//! `SSL_CERT_FILE`) followed by the session CA, written to a per-session directory only this
//! user can read, and removed when the proxy is dropped.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;

/// The variables pointed at the bundle in a client's environment, unless a profile adds more.
pub const DEFAULT_CA_ENV_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "DENO_CERT",
    "AWS_CA_BUNDLE",
];

/// Where distributions keep their PEM root bundle, most common first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The trust bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The roots named by `SSL_CERT_FILE` cannot be read.
    #[error("cannot read the trust roots `{}` (SSL_CERT_FILE): {source}; fix or unset SSL_CERT_FILE", path.display())]
    Roots {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The session directory or a file in it cannot be written.
    #[error("cannot write the proxy trust bundle in `{}`: {source}", path.display())]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The system roots: PEM text and where it came from.
#[derive(Debug, Clone, Default)]
pub struct SystemRoots {
    /// The file read, if one was found.
    pub path: Option<PathBuf>,
    /// Its PEM text.
    pub pem: Vec<u8>,
}

impl SystemRoots {
    /// Reads `explicit` (the parent's `SSL_CERT_FILE`; unreadable is an error), else the first
    /// distribution bundle that exists; none found gives empty roots.
    pub fn load(explicit: Option<&Path>) -> Result<SystemRoots, BundleError> {
        if let Some(path) = explicit {
            let pem = std::fs::read(path).map_err(|source| BundleError::Roots {
                path: path.to_path_buf(),
                source,
            })?;
            return Ok(SystemRoots {
                path: Some(path.to_path_buf()),
                pem,
            });
        }
        for candidate in SYSTEM_BUNDLES {
            if let Ok(pem) = std::fs::read(candidate) {
                return Ok(SystemRoots {
                    path: Some(PathBuf::from(candidate)),
                    pem,
                });
            }
        }
        Ok(SystemRoots::default())
    }

    /// A root store for verifying upstreams: the WebPKI roots plus every usable system root.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut pem = self.pem.as_slice();
        let certs = rustls_pemfile::certs(&mut pem).filter_map(Result::ok);
        // Distribution bundles hold a few certificates rustls cannot use; skipping them only
        // means fewer roots.
        let _ = roots.add_parsable_certificates(certs);
        roots
    }
}

/// A written trust bundle; the directory is removed on drop.
#[derive(Debug)]
pub struct TrustBundle {
    dir: PathBuf,
    ca_path: PathBuf,
    bundle_path: PathBuf,
}

impl TrustBundle {
    /// Writes `ca.pem` (the CA alone) and `bundle.pem` (roots, then the CA) into a fresh
    /// mode-0700 directory under `parent`.
    pub fn write(
        parent: &Path,
        roots: &SystemRoots,
        ca_pem: &str,
    ) -> Result<TrustBundle, BundleError> {
        let dir = parent.join(format!("nono-ca-{}", random_suffix()));
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Write { path, source }
        };
        create_private_dir(&dir).map_err(werr(&dir))?;
        let bundle = TrustBundle {
            ca_path: dir.join("ca.pem"),
            bundle_path: dir.join("bundle.pem"),
            dir,
        };
        write_private(&bundle.ca_path, ca_pem.as_bytes()).map_err(werr(&bundle.ca_path))?;
        let mut all = roots.pem.clone();
        if !all.is_empty() && !all.ends_with(b"\n") {
            all.push(b'\n');
        }
        all.extend_from_slice(ca_pem.as_bytes());
        write_private(&bundle.bundle_path, &all).map_err(werr(&bundle.bundle_path))?;
        Ok(bundle)
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate alone.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Roots plus the CA.
    pub fn bundle_path(&self) -> &Path {
        &self.bundle_path
    }
}

impl Drop for TrustBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_suffix() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_is_private_ordered_and_removed() {
        let parent = std::env::temp_dir();
        let roots = SystemRoots {
            path: None,
            pem: b"ROOTS".to_vec(),
        };
        let b = TrustBundle::write(&parent, &roots, "CA\n").unwrap();
        let dir = b.dir().to_path_buf();
        assert_eq!(std::fs::read(b.bundle_path()).unwrap(), b"ROOTS\nCA\n");
        assert_eq!(std::fs::read(b.ca_path()).unwrap(), b"CA\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        drop(b);
        assert!(!dir.exists());
    }

    #[test]
    fn an_unreadable_ssl_cert_file_is_an_error() {
        let e = SystemRoots::load(Some(Path::new("/nonexistent/roots.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SSL_CERT_FILE"), "{e}");
    }
}
