//! What the user of `nono run` sees of the proxy's refusals at the default level: one line per
//! host (or request) with the fix, the first time only, and a summary when the command exits;
//! and, for `--learn`, every host the command reached.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use nono_proxy::audit::{explain, AuditEvent, AuditLog, Decision, Mode};

/// Refusals seen so far, by subject.
#[derive(Default)]
pub struct Denials {
    seen: Mutex<BTreeMap<String, (u64, bool)>>,
    /// Hosts and ports allowed through the proxy (not routes: those are named already).
    reached: Mutex<BTreeSet<(String, u16)>>,
}

impl Denials {
    /// Installs the hook on `audit`; lines go to stderr unless `quiet`. `allowlist` names
    /// where the allowed hosts come from (the network profile).
    pub fn watch(audit: &AuditLog, allowlist: Option<String>, quiet: bool) -> Arc<Denials> {
        let denials = Arc::new(Denials::default());
        let d = denials.clone();
        audit.set_deny_hook(Box::new(move |ev: &AuditEvent| {
            d.record(ev, allowlist.as_deref(), quiet)
        }));
        denials
    }

    fn record(&self, ev: &AuditEvent, allowlist: Option<&str>, quiet: bool) {
        let tunnel_or_forward = matches!(ev.mode, Mode::Connect | Mode::Forward | Mode::Intercept);
        if ev.decision == Decision::Allow && tunnel_or_forward {
            if let Ok(mut r) = self.reached.lock() {
                r.insert((ev.target.clone(), ev.port));
            }
            return;
        }
        let Some(x) = explain(ev, allowlist) else {
            return;
        };
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let entry = seen.entry(x.subject).or_insert((0, x.policy));
        entry.0 += 1;
        if entry.0 == 1 && !quiet {
            eprintln!("nono: {}", x.text);
        }
    }

    /// Every host and port the command reached through the proxy.
    pub fn reached(&self) -> Vec<(String, u16)> {
        self.reached
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The summary line for the end of the run, when anything was refused.
    pub fn summary(&self) -> Option<String> {
        let seen = self.seen.lock().ok()?;
        let policy: Vec<&String> = seen
            .iter()
            .filter(|(_, (_, p))| *p)
            .map(|(s, _)| s)
            .collect();
        let failed = seen.len() - policy.len();
        if seen.is_empty() {
            return None;
        }
        let total: u64 = seen.values().map(|(n, _)| n).sum();
        let mut line = format!("nono: {total} request(s) refused or failed");
        if !policy.is_empty() {
            let shown: Vec<&str> = policy.iter().take(8).map(|s| s.as_str()).collect();
            line.push_str(&format!(
                "; denied by the policy: {}{}",
                shown.join(", "),
                if policy.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        if failed > 0 {
            line.push_str(&format!(
                "; {failed} target(s) failed to resolve or connect"
            ));
        }
        line.push_str(" (-v shows every decision)");
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nono_proxy::audit::{Decision, Mode};

    #[test]
    fn each_subject_is_counted_and_summarised_once() {
        let d = Denials::default();
        let ev = |t: &str, r: &str| {
            AuditEvent::new(Mode::Connect, Decision::Deny, t, 443, 403).with_reason(r)
        };
        d.record(&ev("a.example", "not_allowlisted"), None, true);
        d.record(&ev("a.example", "not_allowlisted"), None, true);
        d.record(&ev("gone.example", "dns_failed"), None, true);
        let s = d.summary().unwrap();
        assert!(s.starts_with("nono: 3 request(s)"), "{s}");
        assert!(s.contains("denied by the policy: a.example:443"), "{s}");
        assert!(s.contains("1 target(s) failed"), "{s}");
        assert!(Denials::default().summary().is_none());
    }
}
