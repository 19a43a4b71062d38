//! The profile file as written: serde types that reject unknown keys, and the JSON reader that
//! turns serde's errors into `file: key.path: message` errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::credentials::CredentialService;
use crate::error::PolicyError;
use crate::policy::Wsl2ProxyPolicy;

/// A profile file exactly as written (paths unexpanded, nothing merged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Name and description.
    #[serde(default)]
    pub meta: RawMeta,
    /// Profiles this one builds on, merged left to right, then this one on top.
    #[serde(default, deserialize_with = "one_or_many")]
    pub extends: Vec<String>,
    /// Filesystem access.
    #[serde(default)]
    pub filesystem: RawFilesystem,
    /// Network access.
    #[serde(default)]
    pub network: RawNetwork,
    /// Security options.
    #[serde(default)]
    pub security: RawSecurity,
}

/// `meta`: what the profile is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    /// Display name; the file or lookup name when absent.
    pub name: Option<String>,
    /// One line saying what the profile is for.
    pub description: Option<String>,
}

/// `filesystem`: paths the sandboxed command may use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    /// Paths readable and writable.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Paths readable only.
    #[serde(default)]
    pub read: Vec<String>,
    /// Readable and writable when they exist; skipped when they do not.
    #[serde(default)]
    pub allow_if_exists: Vec<String>,
    /// Readable when they exist; skipped when they do not (`~/.gitconfig`).
    #[serde(default)]
    pub read_if_exists: Vec<String>,
    /// Directories nono creates (mode 0700, with parents) before the run when they are
    /// missing: a tool's own state, so its first run works. Each must also be granted.
    #[serde(default)]
    pub create_dirs: Vec<String>,
    /// Files nono creates with this content before the run when they are missing (never
    /// overwritten). Each must also be granted.
    #[serde(default)]
    pub create_files: BTreeMap<String, String>,
    /// Variables set in the child to a path (expanded like the paths above): tools' cache
    /// locations, pointed at nono's own caches.
    #[serde(default)]
    pub path_env: BTreeMap<String, String>,
    /// Show the host's real `/tmp` when `/tmp` is granted, instead of a private, per-session
    /// one (absent: inherit; default false).
    #[serde(default)]
    pub share_tmp: Option<bool>,
}

/// `network`: what the sandboxed command may reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// Block all outbound network access.
    #[serde(default)]
    pub block: bool,
    /// Absent: inherit; `null`: clear; a name: use that network profile.
    #[serde(default, deserialize_with = "present")]
    pub network_profile: Option<Option<String>>,
    /// Extra host patterns to allow.
    #[serde(default)]
    pub allow_domain: Vec<String>,
    /// Host patterns always refused, whatever allows them (exact, `*.suffix`, `host:port`).
    #[serde(default)]
    pub deny_domain: Vec<String>,
    /// Absent: inherit; `[]`: clear; names: merged with the base's.
    pub credentials: Option<Vec<String>>,
    /// Credential services defined by this profile, by name.
    #[serde(default)]
    pub custom_credentials: BTreeMap<String, CredentialService>,
    /// `SERVICE:METHOD:/path/glob` rules restricting credential services.
    #[serde(default)]
    pub allow_endpoint: Vec<String>,
    /// Corporate proxy to chain through, `host:port`.
    pub upstream_proxy: Option<String>,
    /// Hosts that skip the upstream proxy: exact names or `*.suffix`.
    #[serde(default)]
    pub upstream_bypass: Vec<String>,
    /// Localhost ports open for connect and listen.
    #[serde(default)]
    pub open_port: Vec<u16>,
    /// Localhost ports open for listen only.
    #[serde(default)]
    pub listen_port: Vec<u16>,
    /// Hosts never TLS-intercepted (certificate-pinned clients): exact or `*.suffix`.
    #[serde(default)]
    pub intercept_exclude: Vec<String>,
    /// The TLS interception CA.
    #[serde(default)]
    pub proxy_ca: RawProxyCa,
    /// Extra variables pointed at the interception trust bundle in the child.
    #[serde(default)]
    pub ca_env_vars: Vec<String>,
}

/// `network.proxy_ca`: a generated CA's validity, or an existing CA's files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyCa {
    /// Days a generated CA is valid (1-365).
    pub validity_days: Option<u32>,
    /// PEM certificate of an existing CA.
    pub cert: Option<String>,
    /// PKCS#8 PEM key of that CA.
    pub key: Option<String>,
}

/// `security`: options about how strictly to enforce.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    /// What to do on WSL2, where the proxy cannot be enforced by the kernel.
    pub wsl2_proxy_policy: Option<Wsl2ProxyPolicy>,
}

/// Reads a profile file's text.
pub fn parse_profile(file: &str, text: &str) -> Result<RawProfile, PolicyError> {
    parse_json(file, text)
}

/// Deserialises `text`, reporting errors as `file: key.path: message`.
///
/// Unknown keys are reported as `unknown key; valid keys: a, b, c` with the key in the path.
pub fn parse_json<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let err = match result {
        Ok(v) => {
            return de
                .end()
                .map(|()| v)
                .map_err(|e| PolicyError::invalid(file, "", describe(&e)))
        }
        Err(e) => e,
    };
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = err.into_inner();
    let message = describe(&inner);
    Err(match unknown_field(&message) {
        Some((key, valid)) => {
            let key_path = if path.is_empty() || path.ends_with(&key) {
                if path.is_empty() {
                    key.clone()
                } else {
                    path.clone()
                }
            } else {
                format!("{path}.{key}")
            };
            PolicyError::invalid(file, key_path, format!("unknown key; valid keys: {valid}"))
        }
        None => PolicyError::invalid(file, path, message),
    })
}

/// serde_json's message with its position rewritten as `(line L, column C)`.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match msg.strip_suffix(&suffix) {
        Some(m) if e.line() > 0 => format!("{m} (line {}, column {})", e.line(), e.column()),
        Some(m) => m.to_string(),
        None => msg,
    }
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into `x` and `a, b`.
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let valid = rest.split(" (line").next().unwrap_or(rest);
    let valid = valid
        .trim_start_matches(", ")
        .trim_start_matches("expected one of ")
        .trim_start_matches("expected ")
        .replace(" or ", ", ")
        .replace('`', "");
    let valid = if valid.starts_with("there are no fields") {
        "none".to_string()
    } else {
        valid
    };
    Some((key.to_string(), valid))
}

/// Deserialises a key that may be `null`: absent → `None`, `null` → `Some(None)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Deserialises `"name"` or `["a", "b"]` into a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a profile name or a list of profile names")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(OneOrMany)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_profile("profiles/x.json", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn typo_in_a_key_names_the_path_and_the_valid_keys() {
        let e = err(r#"{"network": {"allow_domian": ["a.com"]}}"#);
        assert!(
            e.starts_with("profiles/x.json: network.allow_domian: unknown key; valid keys: block, network_profile, allow_domain,"),
            "{e}"
        );
        let e = err(r#"{"netwrk": {}}"#);
        assert!(
            e.starts_with("profiles/x.json: netwrk: unknown key; valid keys: meta, extends,"),
            "{e}"
        );
        let e = err(r#"{"network": {"custom_credentials": {"x": {"upstrem": "https://a.b"}}}}"#);
        assert!(e.contains("network.custom_credentials.x.upstrem: unknown key; valid keys: description, upstream, credential_key,"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_path() {
        let e = err(r#"{"network": {"block": "yes"}}"#);
        assert!(
            e.starts_with(
                "profiles/x.json: network.block: invalid type: string \"yes\", expected a boolean"
            ),
            "{e}"
        );
        let e = err(r#"{"network": {"open_port": [70000]}}"#);
        assert!(e.contains("network.open_port[0]:"), "{e}");
        let e = err(r#"{"extends": 3}"#);
        assert!(
            e.contains("extends: invalid type: integer `3`, expected a profile name or a list"),
            "{e}"
        );
        let e = err(r#"{"security": {"wsl2_proxy_policy": "allow"}}"#);
        assert!(e.contains("security.wsl2_proxy_policy: unknown variant `allow`, expected `error` or `insecure_proxy`"), "{e}");
    }

    #[test]
    fn syntax_errors_give_the_position() {
        let e = err("{\n  \"meta\": }");
        assert!(e.starts_with("profiles/x.json: "), "{e}");
        assert!(e.contains("(line 2, column"), "{e}");
        let e = err("{} x");
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn three_states_of_network_profile_and_credentials() {
        let p = parse_profile("f", r#"{}"#).unwrap();
        assert_eq!(p.network.network_profile, None);
        assert_eq!(p.network.credentials, None);
        let p = parse_profile(
            "f",
            r#"{"network": {"network_profile": null, "credentials": []}}"#,
        )
        .unwrap();
        assert_eq!(p.network.network_profile, Some(None));
        assert_eq!(p.network.credentials, Some(vec![]));
        let p = parse_profile(
            "f",
            r#"{"network": {"network_profile": "developer", "credentials": ["openai"]}}"#,
        )
        .unwrap();
        assert_eq!(p.network.network_profile, Some(Some("developer".into())));
        assert_eq!(p.network.credentials, Some(vec!["openai".into()]));
    }

    #[test]
    fn extends_is_a_name_or_a_list() {
        assert_eq!(
            parse_profile("f", r#"{"extends": "a"}"#).unwrap().extends,
            ["a"]
        );
        assert_eq!(
            parse_profile("f", r#"{"extends": ["a", "b"]}"#)
                .unwrap()
                .extends,
            ["a", "b"]
        );
    }
}
