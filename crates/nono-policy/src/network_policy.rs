//! `network-policy.json`: host groups, the network profiles built from them, and the built-in
//! credential services. The file is embedded in the binary and checked by the tests.

use std::collections::BTreeMap;

use nono_proxy::filter::HostPattern;
use serde::{Deserialize, Serialize};

use crate::credentials::{check_name, CredentialService};
use crate::error::PolicyError;
use crate::raw::parse_json;

/// The embedded `network-policy.json`.
pub const BUILTIN_JSON: &str = include_str!("../../../network-policy.json");

/// How the embedded file is named in error messages.
pub const BUILTIN_FILE: &str = "network-policy.json (built-in)";

/// The whole network policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Named sets of host patterns.
    pub groups: BTreeMap<String, Group>,
    /// Network profiles: named unions of groups.
    pub profiles: BTreeMap<String, NetworkProfileDef>,
    /// Built-in credential services by name.
    pub credentials: BTreeMap<String, CredentialService>,
}

/// A named set of hosts and `*.suffix` patterns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// What the hosts are for.
    pub description: String,
    /// Host patterns, as `HostPattern::parse` reads them.
    pub hosts: Vec<String>,
}

/// A network profile as defined in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProfileDef {
    /// What the profile is for.
    pub description: String,
    /// The groups it allows.
    pub groups: Vec<String>,
}

/// One line of `nono network-profile list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkProfileSummary {
    /// Profile name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its groups.
    pub groups: Vec<String>,
}

/// `nono network-profile show NAME`: the groups with every host.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkProfileDetail {
    /// Profile name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Each group with its hosts.
    pub groups: Vec<NamedGroup>,
    /// Every host pattern the profile allows, deduplicated, in group order.
    pub hosts: Vec<String>,
}

/// A group with its name.
#[derive(Debug, Clone, Serialize)]
pub struct NamedGroup {
    /// Group name.
    pub name: String,
    /// What the hosts are for.
    pub description: String,
    /// Host patterns.
    pub hosts: Vec<String>,
}

impl NetworkPolicy {
    /// The embedded policy.
    pub fn builtin() -> Result<NetworkPolicy, PolicyError> {
        NetworkPolicy::parse(BUILTIN_FILE, BUILTIN_JSON)
    }

    /// Parses and checks a policy file: every host pattern parses, every group a profile names
    /// exists, every credential service is valid.
    pub fn parse(file: &str, text: &str) -> Result<NetworkPolicy, PolicyError> {
        let mut policy: NetworkPolicy = parse_json(file, text)?;
        for (name, group) in &policy.groups {
            for (i, host) in group.hosts.iter().enumerate() {
                HostPattern::parse(host).map_err(|e| {
                    PolicyError::invalid(file, format!("groups.{name}.hosts[{i}]"), e.to_string())
                })?;
            }
        }
        let group_names = policy.groups.keys().cloned().collect::<Vec<_>>().join(", ");
        for (name, profile) in &policy.profiles {
            for (i, g) in profile.groups.iter().enumerate() {
                if !policy.groups.contains_key(g) {
                    return Err(PolicyError::invalid(
                        file,
                        format!("profiles.{name}.groups[{i}]"),
                        format!("unknown group \"{g}\"; available: {group_names}"),
                    ));
                }
            }
        }
        for (name, svc) in &mut policy.credentials {
            check_name(name)
                .map_err(|m| PolicyError::invalid(file, format!("credentials.{name}"), m))?;
            svc.name.clone_from(name);
            svc.validate().map_err(|(k, m)| {
                PolicyError::invalid(file, format!("credentials.{name}.{k}"), m)
            })?;
        }
        Ok(policy)
    }

    /// Names of the network profiles, sorted.
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    /// Every host pattern of a network profile, normalised and deduplicated; `Err` carries the
    /// "unknown network profile" message listing the available ones.
    pub fn hosts(&self, profile: &str) -> Result<Vec<String>, String> {
        Ok(self.detail(profile)?.hosts)
    }

    /// The groups and hosts of one network profile.
    pub fn detail(&self, profile: &str) -> Result<NetworkProfileDetail, String> {
        let def = self.profiles.get(profile).ok_or_else(|| {
            format!(
                "unknown network profile \"{profile}\"; available: {}",
                self.profile_names().join(", ")
            )
        })?;
        let mut groups = Vec::new();
        let mut hosts: Vec<String> = Vec::new();
        for g in &def.groups {
            let group = self.groups.get(g).ok_or_else(|| {
                format!("network profile \"{profile}\" names unknown group \"{g}\"")
            })?;
            let mut normalised = Vec::new();
            for h in &group.hosts {
                let p = HostPattern::parse(h)
                    .map_err(|e| e.to_string())?
                    .to_string();
                if !hosts.contains(&p) {
                    hosts.push(p.clone());
                }
                normalised.push(p);
            }
            groups.push(NamedGroup {
                name: g.clone(),
                description: group.description.clone(),
                hosts: normalised,
            });
        }
        Ok(NetworkProfileDetail {
            name: profile.to_string(),
            description: def.description.clone(),
            groups,
            hosts,
        })
    }
}

/// `nono network-profile list`: every built-in network profile with its groups.
pub fn network_profiles() -> Result<Vec<NetworkProfileSummary>, PolicyError> {
    let policy = NetworkPolicy::builtin()?;
    Ok(policy
        .profiles
        .iter()
        .map(|(name, def)| NetworkProfileSummary {
            name: name.clone(),
            description: def.description.clone(),
            groups: def.groups.clone(),
        })
        .collect())
}

/// `nono network-profile show NAME`: the groups of a built-in network profile and every host.
pub fn network_profile_show(name: &str) -> Result<NetworkProfileDetail, PolicyError> {
    NetworkPolicy::builtin()?
        .detail(name)
        .map_err(|m| PolicyError::flag("network profile", m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_file_matches_its_schema_and_every_group_exists() {
        let p = NetworkPolicy::builtin().unwrap();
        for g in [
            "llm_apis",
            "package_registries",
            "github",
            "gitlab",
            "sigstore",
            "documentation",
            "google_cloud",
            "azure",
            "aws_bedrock",
        ] {
            assert!(!p.groups[g].hosts.is_empty(), "{g}");
        }
        assert_eq!(p.profiles["minimal"].groups, ["llm_apis"]);
        let dev = [
            "llm_apis",
            "package_registries",
            "github",
            "gitlab",
            "sigstore",
            "documentation",
        ];
        for name in ["claude-code", "codex", "opencode"] {
            assert_eq!(p.profiles[name].groups, dev, "{name}");
        }
        // apt mirrors for a developer's own sandboxes, not for the agents by default.
        let mut with_apt = dev.to_vec();
        with_apt.push("os_packages");
        assert_eq!(p.profiles["developer"].groups, with_apt);
        let all: Vec<&String> = p.groups.keys().collect();
        let mut ent: Vec<&String> = p.profiles["enterprise"].groups.iter().collect();
        ent.sort();
        assert_eq!(ent, all);
    }

    #[test]
    fn builtin_credentials_have_their_real_upstreams_and_headers() {
        let p = NetworkPolicy::builtin().unwrap();
        let c = |n: &str| p.credentials[n].clone();
        let o = c("openai");
        assert_eq!(
            (
                o.upstream.as_str(),
                o.inject_header.as_str(),
                o.credential_format.as_str()
            ),
            ("https://api.openai.com/v1", "Authorization", "Bearer {}")
        );
        assert_eq!(
            (
                o.env_var.as_deref(),
                o.base_url_env_or_default().as_str(),
                o.credential_key.as_str()
            ),
            (Some("OPENAI_API_KEY"), "OPENAI_BASE_URL", "openai_api_key")
        );
        assert_eq!(c("anthropic").inject_header, "x-api-key");
        assert_eq!(
            c("gemini").base_url_env_or_default(),
            "GOOGLE_GEMINI_BASE_URL"
        );
        assert_eq!(c("github").credential_format, "token {}");
        assert_eq!(c("gitlab").inject_header, "PRIVATE-TOKEN");
        assert_eq!(c("gitlab").name, "gitlab");
    }

    #[test]
    fn unknown_group_is_an_error_naming_the_available_ones() {
        let text = r#"{"groups": {"a": {"description": "", "hosts": ["x.com"]}},
            "profiles": {"p": {"description": "", "groups": ["a", "b"]}}, "credentials": {}}"#;
        let e = NetworkPolicy::parse("np.json", text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "np.json: profiles.p.groups[1]: unknown group \"b\"; available: a"
        );
    }

    #[test]
    fn bad_host_and_unknown_key_are_errors() {
        let text = r#"{"groups": {"a": {"description": "", "hosts": ["https://x.com"]}}, "profiles": {}, "credentials": {}}"#;
        let e = NetworkPolicy::parse("np.json", text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("np.json: groups.a.hosts[0]: invalid host pattern"),
            "{e}"
        );
        let text = r#"{"groups": {}, "profiles": {}, "credentials": {}, "extra": 1}"#;
        let e = NetworkPolicy::parse("np.json", text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "np.json: extra: unknown key; valid keys: groups, profiles, credentials"
        );
    }

    #[test]
    fn show_lists_groups_and_every_host() {
        let d = network_profile_show("minimal").unwrap();
        assert_eq!(d.groups.len(), 1);
        assert!(d.hosts.contains(&"api.anthropic.com".to_string()));
        let e = network_profile_show("nope").unwrap_err().to_string();
        assert!(e.contains("unknown network profile \"nope\"; available: claude-code, codex, developer, enterprise, minimal, opencode"), "{e}");
        let list = network_profiles().unwrap();
        assert_eq!(list.len(), 6);
    }
}
