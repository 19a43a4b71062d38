//! The session token: 256 random bits per session, checked in constant time.
//!
//! Clients present it as `Proxy-Authorization: Basic` (any user name, password = token),
//! `Proxy-Authorization: Bearer TOKEN`, or, on reverse-proxy routes, `X-Nono-Token`.

use std::fmt;

use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret the proxy requires from its clients.
#[derive(Clone)]
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// A fresh token: 32 bytes from the OS CSPRNG, hex-encoded (64 characters).
    pub fn generate() -> SessionToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let mut s = Zeroizing::new(String::with_capacity(64));
        for b in bytes.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        SessionToken(s)
    }

    /// A user-chosen secret (`nono proxy --pass`). Empty is refused by the caller.
    pub fn from_secret(secret: Zeroizing<String>) -> SessionToken {
        SessionToken(secret)
    }

    /// The token text, for the child's environment and the connection details.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn verify(&self, presented: &[u8]) -> bool {
        // ct_eq on slices of different length returns false without leaking where they differ.
        bool::from(self.0.as_bytes().ct_eq(presented))
    }

    /// Checks a `Proxy-Authorization` header value (Basic or Bearer).
    pub fn verify_proxy_authorization(&self, value: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        let text = text.trim();
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        let rest = rest.trim_start();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.verify(rest.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return false;
            };
            let decoded = Zeroizing::new(decoded);
            return match decoded.iter().position(|&b| b == b':') {
                Some(i) => self.verify(&decoded[i + 1..]),
                None => false,
            };
        }
        false
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn basic_and_bearer_accepted_wrong_refused() {
        let t = SessionToken::from_secret(Zeroizing::new("s3cret".into()));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("nono:s3cret")
        );
        assert!(t.verify_proxy_authorization(basic.as_bytes()));
        assert!(t.verify_proxy_authorization(b"Bearer s3cret"));
        assert!(t.verify_proxy_authorization(b"bearer   s3cret"));
        assert!(!t.verify_proxy_authorization(b"Bearer s3cre"));
        assert!(!t.verify_proxy_authorization(b"Bearer s3cretX"));
        assert!(!t.verify_proxy_authorization(b"Basic !!!"));
        let nouser = base64::engine::general_purpose::STANDARD.encode("s3cret");
        assert!(!t.verify_proxy_authorization(format!("Basic {nouser}").as_bytes()));
        assert!(!t.verify_proxy_authorization(b"Digest s3cret"));
    }

    #[test]
    fn debug_hides_the_token() {
        let t = SessionToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
