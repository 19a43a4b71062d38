//! Error types at the crate boundary.

use std::io;
use std::net::SocketAddr;

/// A host pattern or request host that does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// An allowlist pattern is malformed.
    #[error("invalid host pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request's target host is malformed.
    #[error("invalid host `{host}`: {reason}")]
    InvalidHost {
        /// The host as received.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The proxy could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A host pattern in the configuration is malformed.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The configuration is inconsistent.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address we tried.
        addr: SocketAddr,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// A credential route is invalid.
    #[error(transparent)]
    Route(#[from] crate::route::RouteError),
    /// A required credential could not be loaded.
    #[error("credential route `{route}`: cannot load its credential from {from}")]
    Credential {
        /// Route name.
        route: String,
        /// Source description (never the secret).
        from: String,
        /// Why.
        #[source]
        cause: crate::credential::CredentialError,
    },
    /// Another I/O failure during start-up.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// OS error.
        #[source]
        source: io::Error,
    },
}
