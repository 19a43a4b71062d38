//! macOS: the interception CA in the login keychain for the session, for clients that read
//! only the keychain (Safari's stack, Go's and Swift's defaults). Untested here: the CI runs
//! on Linux, where this module is not built.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The CA trusted in the keychain until dropped.
pub struct TrustedCa {
    cert: PathBuf,
}

impl TrustedCa {
    /// Adds `cert` as a trusted root for the user (macOS asks for confirmation).
    pub fn add(cert: &Path) -> anyhow::Result<TrustedCa> {
        let status = Command::new("/usr/bin/security")
            .args(["add-trusted-cert", "-r", "trustRoot", "-p", "ssl"])
            .arg(cert)
            .status()
            .context("running /usr/bin/security add-trusted-cert")?;
        if !status.success() {
            bail!("--trust-proxy-ca: `security add-trusted-cert` failed ({status}); run without it and point clients at the trust bundle");
        }
        Ok(TrustedCa {
            cert: cert.to_path_buf(),
        })
    }
}

impl Drop for TrustedCa {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/security")
            .arg("remove-trusted-cert")
            .arg(&self.cert)
            .status();
    }
}
