//! nono-policy: profiles and the network policy of nono, resolved into one policy value.
//!
//! Configuration goes through two phases: what the user wrote is parsed and checked (a
//! profile file, the command line), then resolved (`extends` merged, variables expanded,
//! network profiles expanded into hosts) into a [`ResolvedPolicy`] that the sandbox and the
//! proxy consume and `nono profile show` prints. `nono run` and `nono proxy` both call
//! [`resolve`].
//!
//! Modules:
//! - `raw`: the profile file as written (serde types rejecting unknown keys) and the JSON
//!   reader that reports `file: key.path: message`.
//! - `network_policy`: `network-policy.json` (host groups, network profiles, built-in
//!   credential services), embedded and checked.
//! - `credentials`: credential services, with the validation of every field.
//! - `endpoint`: endpoint rules (`SERVICE:METHOD:/path/glob`).
//! - `builtin`: the built-in profiles embedded from `profiles/`.
//! - `vars`: [`Env`] and the expansion of `$WORKDIR`, `$HOME`, `$TMPDIR`,
//!   `$XDG_CONFIG_HOME` and `~`.
//! - `layer`: one profile file (or the command line) checked and expanded.
//! - `load`: profile lookup (path, user directory, built-ins) and `extends` chains.
//! - `merge`: how a child layer combines with its base.
//! - `policy`: [`PolicyArgs`] and the resolved policy types.
//! - `resolve`: flags + profile → [`ResolvedPolicy`].
//! - `resolve_network`: the network half of resolution (hosts, direct endpoints, credentials,
//!   endpoint rules, upstream proxy, mode and the `--block-net` conflict).
//! - `proxy_config`: [`proxy_config`], the one function that builds the proxy's
//!   configuration for both `nono run` and `nono proxy`.
//! - `sandbox_config`: [`sandbox_policy`], the paths and ports the confined child gets.
//! - `self_edit`: [`check_self_edit`], refusing a profile or credential source the sandbox
//!   could rewrite (it, or a symlink on its way, lies beneath one of the policy's read-write
//!   grants).
//! - `command_files`: the files a `cmd://` credential command runs or names (its program,
//!   the `PATH` directories searched for it, scripts, file arguments).
//! - `commands`: what `nono profile ...` and `nono network-profile ...` print.
//! - `error`: [`PolicyError`].
#![forbid(unsafe_code)]

mod builtin;
mod command_files;
mod commands;
mod credentials;
mod endpoint;
mod error;
mod layer;
mod load;
mod merge;
mod network_policy;
mod policy;
mod proxy_config;
mod raw;
mod resolve;
mod resolve_network;
mod sandbox_config;
mod self_edit;
mod state;
#[cfg(test)]
mod test_support;
mod vars;

pub use builtin::BUILTIN_PROFILES;
pub use commands::{
    available_profile_names, list_profiles, show_profile, validate_profile_file, ProfileSummary,
};
pub use credentials::{CredentialService, InjectMode};
pub use endpoint::{EndpointMatch, EndpointRule};
pub use error::PolicyError;
pub use load::{ProfileInfo, MAX_EXTENDS_DEPTH};
pub use network_policy::{
    network_profile_show, network_profiles, Group, NamedGroup, NetworkPolicy, NetworkProfileDef,
    NetworkProfileDetail, NetworkProfileSummary,
};
pub use policy::{
    DirectEndpoint, NetworkMode, PolicyArgs, ResolvedFs, ResolvedNetwork, ResolvedPolicy, Security,
    Wsl2ProxyPolicy,
};
pub use proxy_config::{proxy_config, ProxyOptions, ProxySetupError};
pub use resolve::resolve;
pub use sandbox_config::{network_isolation, sandbox_policy, NetworkIsolation};
pub use self_edit::{check_ca_key_unreadable, check_self_edit};
pub use state::create_state;
pub use vars::{expand, Env, KNOWN_VARS};
