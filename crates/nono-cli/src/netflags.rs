//! The network and profile flags `nono run` and `nono proxy` share, turned into the
//! policy crate's [`PolicyArgs`] so both commands resolve through the same code.

use clap::Args;
use nono_policy::PolicyArgs;
use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::secret::SecretArg;

/// Flags shared by `nono run` and `nono proxy`.
#[derive(Debug, Args, Default)]
pub struct NetFlags {
    /// Profile name (user or built-in) or path to a profile JSON file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Network profile from network-policy.json (overrides the profile's).
    #[arg(long, value_name = "NAME")]
    pub network_profile: Option<String>,
    /// Allow a host (repeatable): `host`, `*.suffix`, `host:port`, IP, `[v6]:port`.
    #[arg(long = "allow-domain", value_name = "HOST")]
    pub allow_domain: Vec<String>,
    /// Always refuse a host (repeatable): `host`, `*.suffix`, `host:port`; wins over every
    /// allow, network-profile groups and wildcards included.
    #[arg(long = "deny-domain", value_name = "HOST")]
    pub deny_domain: Vec<String>,
    /// Inject this credential service (repeatable): openai, anthropic, gemini, github, gitlab,
    /// or a profile's custom credential.
    #[arg(long = "credential", value_name = "SERVICE")]
    pub credential: Vec<String>,
    /// Restrict a credential route (repeatable): `SERVICE:METHOD:/path/glob`.
    #[arg(long = "allow-endpoint", value_name = "RULE")]
    pub allow_endpoint: Vec<String>,
    /// Chain through a corporate proxy: `HOST:PORT`. A proxy password goes in
    /// NONO_UPSTREAM_PROXY (`http://user:pass@HOST:PORT`), never on the command line, where
    /// `ps` (and, for `nono run`, the sandboxed command) can read it.
    #[arg(
        long,
        value_name = "PROXY",
        env = "NONO_UPSTREAM_PROXY",
        hide_env_values = true
    )]
    pub upstream_proxy: Option<SecretArg>,
    /// Reach this host directly instead of through the upstream proxy (repeatable):
    /// exact host or `*.suffix`. Also NONO_UPSTREAM_BYPASS (comma-separated).
    #[arg(long = "upstream-bypass", value_name = "PATTERN")]
    pub upstream_bypass: Vec<String>,
    /// Days the session's TLS-interception CA is valid (1-365, default 1). Interception
    /// happens only for credential-route hosts and URL-scoped --allow-domain entries.
    #[arg(
        long,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..=365),
        conflicts_with_all = ["proxy_ca_cert", "proxy_ca_key"]
    )]
    pub proxy_ca_validity: Option<u32>,
    /// Use this CA certificate (PEM) for TLS interception instead of a fresh one; needs
    /// --proxy-ca-key.
    #[arg(long, value_name = "FILE", requires = "proxy_ca_key")]
    pub proxy_ca_cert: Option<std::path::PathBuf>,
    /// The PKCS#8 PEM key of --proxy-ca-cert.
    #[arg(long, value_name = "FILE", requires = "proxy_ca_cert")]
    pub proxy_ca_key: Option<std::path::PathBuf>,
    /// macOS: add the interception CA to the login keychain for the session (removed at
    /// exit), for clients that ignore SSL_CERT_FILE.
    #[arg(long)]
    pub trust_proxy_ca: bool,
}

/// Whether nono's own command line (before any `--`) carries `--upstream-proxy`: then its
/// value is in /proc/PID/cmdline, whatever the environment also says.
fn upstream_proxy_flag_given() -> bool {
    flag_in(std::env::args_os().skip(1), "--upstream-proxy")
}

fn flag_in(args: impl Iterator<Item = std::ffi::OsString>, flag: &str) -> bool {
    let with_value = format!("{flag}=");
    args.take_while(|a| a != "--").any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&with_value)
    })
}

/// The parent's `SSL_CERT_FILE`, when set: the roots the interception trust bundle starts
/// from, so a corporate root the user relies on keeps working in the child.
pub fn roots_file() -> Option<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

impl NetFlags {
    /// The policy arguments, plus the upstream proxy spec as given (it may hold a password,
    /// which stays out of the policy value and reaches only the proxy configuration).
    ///
    /// `confines_a_child`: `nono run` refuses upstream-proxy credentials given as a flag,
    /// because the confined command can read nono's command line (`/proc/PID/cmdline` has no
    /// ptrace-style check); the environment variable is not readable from the child.
    pub fn policy_args(
        &self,
        confines_a_child: bool,
    ) -> Result<(PolicyArgs, Option<Zeroizing<String>>), Failure> {
        if self.trust_proxy_ca && !cfg!(target_os = "macos") {
            return Err(Failure::usage(
                "--trust-proxy-ca is for macOS, whose clients read the keychain; here clients trust the interception CA through SSL_CERT_FILE and the other variables nono sets",
            ));
        }
        let mut bypass = self.upstream_bypass.clone();
        if let Ok(list) = std::env::var("NONO_UPSTREAM_BYPASS") {
            bypass.extend(nono_proxy::upstream::split_bypass_list(&list));
        }
        let (upstream_host, spec) = match self
            .upstream_proxy
            .as_ref()
            .map(|s| s.expose().trim())
            .filter(|s| !s.is_empty())
        {
            None => (None, None),
            Some(s) => {
                let parsed = nono_proxy::UpstreamProxyConfig::parse::<&str>(s, &[])
                    .map_err(|e| Failure::usage(format!("--upstream-proxy: {e}")))?;
                if confines_a_child && parsed.auth.is_some() && upstream_proxy_flag_given() {
                    return Err(Failure::usage(
                        "--upstream-proxy: credentials on the command line are readable by the sandboxed command (/proc/PID/cmdline); pass the proxy URL in NONO_UPSTREAM_PROXY instead",
                    ));
                }
                (Some(parsed.address()), Some(Zeroizing::new(s.to_string())))
            }
        };
        let args = PolicyArgs {
            profile: self.profile.clone(),
            network_profile: self.network_profile.clone(),
            allow_domain: self.allow_domain.clone(),
            deny_domain: self.deny_domain.clone(),
            credential: self.credential.clone(),
            allow_endpoint: self.allow_endpoint.clone(),
            upstream_proxy: upstream_host,
            upstream_bypass: bypass,
            proxy_ca_validity: self.proxy_ca_validity,
            proxy_ca_cert: self.proxy_ca_cert.clone(),
            proxy_ca_key: self.proxy_ca_key.clone(),
            ..PolicyArgs::default()
        };
        Ok((args, spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = std::ffi::OsString> {
        list.iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_flag_counts_only_before_the_command() {
        let f = "--upstream-proxy";
        assert!(flag_in(
            args(&["run", "--upstream-proxy", "u:p@h:1", "--", "x"]),
            f
        ));
        assert!(flag_in(
            args(&["run", "--upstream-proxy=u:p@h:1", "--", "x"]),
            f
        ));
        assert!(!flag_in(
            args(&["run", "--", "x", "--upstream-proxy", "y"]),
            f
        ));
        assert!(!flag_in(args(&["run", "--allow-cwd", "--", "x"]), f));
    }
}
