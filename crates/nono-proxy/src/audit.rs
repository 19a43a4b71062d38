//! Audit events: every decision the proxy makes, kept in a bounded buffer and logged.

use std::collections::VecDeque;
use std::sync::Mutex;
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

/// Bounded in-memory audit buffer.
#[derive(Debug, Default)]
pub struct AuditLog {
    events: Mutex<VecDeque<AuditEvent>>,
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
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
