//! Audit events: every decision the proxy makes, kept in a bounded buffer and logged.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many events are kept before the oldest are dropped.
pub const AUDIT_CAPACITY: usize = 4096;

/// Which proxy path handled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// CONNECT tunnel.
    Connect,
    /// Plain HTTP forwarding (absolute-form request).
    Forward,
    /// Credential-injecting reverse proxy route.
    Reverse,
    /// A request inside an intercepted (TLS-terminated) CONNECT tunnel.
    Intercept,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Connect => "CONNECT",
            Mode::Forward => "FORWARD",
            Mode::Reverse => "REVERSE",
            Mode::Intercept => "INTERCEPT",
        }
    }
}

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Let through.
    Allow,
    /// Refused.
    Deny,
}

/// One decision. Never contains a token or credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_unix_ms: u64,
    /// Proxy path.
    pub mode: Mode,
    /// Allow or deny.
    pub decision: Decision,
    /// Target host (or service name for routes).
    pub target: String,
    /// Target port (0 when not applicable).
    pub port: u16,
    /// HTTP method, when known.
    pub method: Option<String>,
    /// Request path, when known (never for CONNECT).
    pub path: Option<String>,
    /// Status code sent to the client.
    pub status: u16,
    /// Why (for denials: `denied_cidr`, `not_allowlisted`, ...).
    pub reason: Option<String>,
}

impl AuditEvent {
    /// A new event stamped now.
    pub fn new(mode: Mode, decision: Decision, target: &str, port: u16, status: u16) -> Self {
        let timestamp_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        AuditEvent {
            timestamp_unix_ms,
            mode,
            decision,
            target: without_userinfo(target),
            port,
            method: None,
            path: None,
            status,
            reason: None,
        }
    }

    /// Adds the method and path (without its query: clients put secrets there).
    pub fn with_request(mut self, method: &str, path: Option<&str>) -> Self {
        self.method = Some(method.to_string());
        self.path = path.map(|p| p.split_once('?').map_or(p, |(path, _)| path).to_string());
        self
    }

    /// Adds the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// A refused target as the client wrote it may carry `user:password@` (even the session
/// token); only what follows the last `@` is kept.
fn without_userinfo(target: &str) -> String {
    match target.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => target.to_string(),
    }
}

/// Called with every event as it is recorded (`nono run` prints a hint per denied host and
/// `--learn` collects the hosts reached).
pub type DenyHook = Box<dyn Fn(&AuditEvent) + Send + Sync>;

/// Bounded in-memory audit buffer.
#[derive(Default)]
pub struct AuditLog {
    events: Mutex<VecDeque<AuditEvent>>,
    on_deny: OnceLock<DenyHook>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("hook", &self.on_deny.get().is_some())
            .finish_non_exhaustive()
    }
}

/// What a refusal means for the user, in one sentence with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What it is about (`host:port`, or `METHOD host/path`), to say each thing once.
    pub subject: String,
    /// The sentence.
    pub text: String,
    /// A decision of the policy (as opposed to a name that does not resolve, an upstream
    /// that cannot be reached, a client without the token).
    pub policy: bool,
}

/// Explains a refusal; `allowlist` names where the allowed hosts come from ("network profile
/// claude-code"). `None` for events that are not refusals, and for missing proxy credentials
/// (clients commonly try without them first).
pub fn explain(ev: &AuditEvent, allowlist: Option<&str>) -> Option<Explanation> {
    if ev.decision != Decision::Deny {
        return None;
    }
    let reason = ev.reason.as_deref().unwrap_or("-");
    let hostport = format!("{}:{}", ev.target, ev.port);
    let request = match (&ev.method, &ev.path) {
        (Some(m), Some(p)) => format!("{m} {}{p}", ev.target),
        _ => hostport.clone(),
    };
    let list = allowlist.map_or_else(|| "the allowlist".to_string(), str::to_string);
    let (subject, text, policy) = match reason {
        "auth_required" => return None,
        "not_allowlisted" => (
            hostport.clone(),
            format!(
                "denied {hostport} (not in {list}); allow it with --allow-domain {}",
                ev.target
            ),
            true,
        ),
        "denied_loopback" | "denied_local_address" => (
            hostport.clone(),
            format!(
                "denied {hostport} (this machine is reachable only when named exactly); allow it with --allow-domain {}",
                ev.target
            ),
            true,
        ),
        "denied_domain" => (
            hostport.clone(),
            format!("denied {hostport}: on the deny list (--deny-domain / deny_domain), which wins over every allow"),
            true,
        ),
        "denied_metadata" => (
            hostport.clone(),
            format!("denied {hostport}: cloud metadata endpoints are always denied"),
            true,
        ),
        "denied_cidr" => (
            hostport.clone(),
            format!("denied {hostport}: link-local and unspecified addresses are always denied"),
            true,
        ),
        "endpoint_rule" => (
            request.clone(),
            format!(
                "denied {request}: outside the endpoint rules of the credential route; add one with --allow-endpoint SERVICE:METHOD:/path"
            ),
            true,
        ),
        "endpoint_default_deny" => (
            request.clone(),
            format!(
                "denied {request}: this endpoint mints credentials or lasting access; allow it explicitly with --allow-endpoint SERVICE:METHOD:/path"
            ),
            true,
        ),
        "url_not_allowed" => (
            request.clone(),
            format!(
                "denied {request}: outside the URL-scoped --allow-domain entries for {}",
                ev.target
            ),
            true,
        ),
        "dns_failed" | "dns_timeout" => (
            hostport.clone(),
            format!("{} does not resolve (a DNS failure, not a policy denial)", ev.target),
            false,
        ),
        "upstream_unreachable" | "upstream_connect_timeout" => (
            hostport.clone(),
            format!("{hostport} is unreachable (allowed, but the connection failed)"),
            false,
        ),
        other => (
            request.clone(),
            format!("denied {request} ({other})"),
            true,
        ),
    };
    Some(Explanation {
        subject,
        text,
        policy,
    })
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the event hook (once; later calls are ignored).
    pub fn set_deny_hook(&self, hook: DenyHook) {
        let _ = self.on_deny.set(hook);
    }

    /// Records and logs an event.
    pub fn record(&self, ev: AuditEvent) {
        let what = match (&ev.method, ev.mode) {
            (Some(m), Mode::Forward | Mode::Reverse | Mode::Intercept) => {
                format!("{} {m}", ev.mode.label())
            }
            _ => ev.mode.label().to_string(),
        };
        let path = ev.path.as_deref().unwrap_or("");
        match (ev.decision, &ev.reason) {
            (Decision::Allow, _) => {
                tracing::info!(target: "nono::audit", "ALLOW {what} {}:{}{path}", ev.target, ev.port)
            }
            (Decision::Deny, r) => tracing::warn!(
                target: "nono::audit",
                "DENY {what} {}:{}{path} reason={}",
                ev.target,
                ev.port,
                r.as_deref().unwrap_or("-")
            ),
        }
        if let Some(hook) = self.on_deny.get() {
            hook(&ev);
        }
        let Ok(mut q) = self.events.lock() else {
            return;
        };
        if q.len() == AUDIT_CAPACITY {
            q.pop_front();
        }
        q.push_back(ev);
    }

    /// Takes every buffered event.
    pub fn drain(&self) -> Vec<AuditEvent> {
        match self.events.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(target: &str, port: u16, reason: &str) -> AuditEvent {
        AuditEvent::new(Mode::Connect, Decision::Deny, target, port, 403).with_reason(reason)
    }

    #[test]
    fn refusals_explain_themselves_with_the_fix() {
        let x = explain(
            &denied("example.com", 443, "not_allowlisted"),
            Some("network profile claude-code"),
        )
        .unwrap();
        assert_eq!(x.subject, "example.com:443");
        assert_eq!(
            x.text,
            "denied example.com:443 (not in network profile claude-code); allow it with --allow-domain example.com"
        );
        assert!(x.policy);
        let x = explain(&denied("no.such.name", 443, "dns_failed"), None).unwrap();
        assert!(!x.policy && x.text.contains("does not resolve"), "{x:?}");
        let x = explain(&denied("10.9.9.9", 443, "upstream_unreachable"), None).unwrap();
        assert!(!x.policy && x.text.contains("unreachable"), "{x:?}");
        assert!(explain(&denied("a", 1, "auth_required"), None).is_none());
        let allowed = AuditEvent::new(Mode::Connect, Decision::Allow, "a", 1, 200);
        assert!(explain(&allowed, None).is_none());
        let ev = AuditEvent::new(Mode::Intercept, Decision::Deny, "api.github.com", 443, 403)
            .with_reason("endpoint_default_deny")
            .with_request("POST", Some("/user/keys?x=1"));
        let x = explain(&ev, None).unwrap();
        assert_eq!(x.subject, "POST api.github.com/user/keys");
        assert!(x.text.contains("--allow-endpoint"), "{x:?}");
    }

    #[test]
    fn the_hook_sees_each_event() {
        let log = AuditLog::new();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = seen.clone();
        log.set_deny_hook(Box::new(move |_| {
            s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        log.record(denied("a.example", 443, "not_allowlisted"));
        log.record(AuditEvent::new(
            Mode::Connect,
            Decision::Allow,
            "b",
            443,
            200,
        ));
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn buffer_is_bounded_and_drains() {
        let log = AuditLog::new();
        for i in 0..(AUDIT_CAPACITY + 10) {
            log.record(AuditEvent::new(
                Mode::Connect,
                Decision::Allow,
                "h",
                (i % 60000) as u16,
                200,
            ));
        }
        let ev = log.drain();
        assert_eq!(ev.len(), AUDIT_CAPACITY);
        assert_eq!(ev[0].port, 10);
        assert!(log.drain().is_empty());
    }

    #[test]
    fn userinfo_and_queries_never_reach_the_record() {
        let ev = AuditEvent::new(Mode::Forward, Decision::Deny, "nono:SECRET@h:1", 0, 407)
            .with_request("GET", Some("/x?token=SECRET&a=1"));
        assert_eq!(ev.target, "***@h:1");
        assert_eq!(ev.path.as_deref(), Some("/x"));
        assert!(!format!("{ev:?}").contains("SECRET"));
    }
}
