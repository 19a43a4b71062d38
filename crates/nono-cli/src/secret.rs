//! A command-line value that is a secret: zeroized on drop and never shown by `Debug`.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

/// A secret flag or environment value (`--pass`, `--upstream-proxy` with a password).
#[derive(Clone)]
pub struct SecretArg(Zeroizing<String>);

impl SecretArg {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretArg(Zeroizing::new(s.to_string())))
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s: SecretArg = "http://u:hunter2@proxy:3128".parse().unwrap();
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "http://u:hunter2@proxy:3128");
    }
}
