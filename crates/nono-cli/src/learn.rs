//! `nono run --learn FILE`: the command runs with every host open that the deny list allows;
//! afterwards the hosts it reached become a profile fragment extending the base profile.

use std::path::Path;

use anyhow::Context;
use nono_policy::ResolvedPolicy;
use nono_proxy::filter::{AllowMatch, Host, HostFilter};
use serde_json::json;

/// Opens the network for learning: every host the deny list allows, through the proxy.
/// Returns the allowlist that was in force, to leave what it already covers out of the
/// fragment.
pub fn open_network(p: &mut ResolvedPolicy) -> Result<Vec<String>, String> {
    if p.network.mode == nono_policy::NetworkMode::Blocked {
        return Err(
            "--learn needs the network to learn from; drop --block-net (or network.block)".into(),
        );
    }
    let before = std::mem::take(&mut p.network.allowed_hosts);
    p.network.url_rules.clear();
    p.network.mode = nono_policy::NetworkMode::Proxy;
    Ok(before)
}

/// The `allow_domain` entries to learn: each host reached that `known` did not already allow,
/// once, sorted.
pub fn entries(reached: &[(String, u16)], known: &[String]) -> Vec<String> {
    let filter = HostFilter::new(known).ok();
    let mut out: Vec<String> = reached
        .iter()
        .filter(|(host, port)| {
            let Ok(h) = Host::parse(host) else {
                return false;
            };
            match &filter {
                // An empty allowlist allows everything, but only nominally: learn it all.
                Some(f) if !known.is_empty() => {
                    matches!(f.check(&h, *port), AllowMatch::NotListed)
                }
                _ => true,
            }
        })
        .map(|(host, _)| host.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Writes the fragment.
pub fn write(
    path: &Path,
    base: Option<&str>,
    entries: &[String],
    command: &[std::ffi::OsString],
) -> anyhow::Result<()> {
    let cmd = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "learned".into());
    let mut profile = json!({
        "meta": {
            "name": name,
            "description": format!(
                "Learned by `nono run --learn` from `{cmd}`: the {} host(s) it reached that {} did not allow yet",
                entries.len(),
                base.map_or_else(|| "the command line".to_string(), |b| format!("profile {b}")),
            ),
        },
        "extends": base.unwrap_or("default"),
        "network": { "allow_domain": entries },
    });
    if base.is_none() {
        profile["meta"]["description"] = json!(format!(
            "Learned by `nono run --learn` from `{cmd}`: the {} host(s) it reached",
            entries.len()
        ));
    }
    let text = serde_json::to_string_pretty(&profile)? + "\n";
    std::fs::write(path, text).with_context(|| format!("--learn: cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_hosts_are_learned_once() {
        let reached = vec![
            ("api.example.com".to_string(), 443),
            ("api.example.com".to_string(), 8443),
            ("cdn.known.org".to_string(), 443),
            ("new.example.net".to_string(), 80),
        ];
        let e = entries(&reached, &["*.known.org".to_string()]);
        assert_eq!(e, ["api.example.com", "new.example.net"]);
        assert_eq!(entries(&reached, &[]).len(), 3);
    }
}
