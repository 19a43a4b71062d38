//! nono-proxy: the network filtering proxy of the nono sandbox.
//!
//! It runs unsandboxed in the supervisor (or standalone as `nono proxy`); confined clients
//! reach the network only through it. The folders follow what a request goes through:
//!
//! - `admission/`: [`filter`] (host allowlist patterns), [`deny`] (the always-denied list:
//!   cloud metadata, link-local, this machine's addresses unless explicit, the proxy itself),
//!   [`dns`] (injectable resolution), [`gate`] (deny list, allowlist, resolve, check every
//!   address) and [`preauth`] (the budget of connections that have not authenticated yet).
//! - `tunnel/`: CONNECT tunnels — the handler, [`relay`] (`splice(2)` on Linux), connecting to
//!   checked addresses, loopback tuning.
//! - `forward/`: plain HTTP forwarding (absolute-form requests).
//! - [`reverse`]: the credential-injecting reverse proxy — [`route`] (configuration),
//!   [`credential`] (sources held in `Zeroizing`), [`endpoint`] (path normalisation and
//!   endpoint rules), [`inject`] (phantom tokens, injection, response scrubbing) and its pooled,
//!   TLS-verified upstream connections.
//! - [`intercept`]: TLS interception for credential-route hosts and URL-scoped allow entries
//!   — the session CA, the leaf cache, the trust bundle, the inner HTTP/1.1 and HTTP/2 server.
//! - [`upstream`]: chaining through an upstream (corporate) proxy.
//! - At the top: [`server`] (listener, connection cap, dispatch, shutdown), [`audit`],
//!   [`token`], [`env`] (the variables a client needs), [`config`], [`error`].
#![forbid(unsafe_code)]

mod admission;
pub mod audit;
pub mod config;
pub mod env;
pub mod error;
mod forward;
pub mod intercept;
mod respond;
pub mod reverse;
pub mod server;
pub mod token;
mod tunnel;
mod upgrade;
pub mod upstream;

// Each module stays reachable at the crate root, where callers have always found it.
pub use admission::{deny, dns, filter, gate, preauth};
pub use reverse::{credential, endpoint, inject, route};
pub use tunnel::relay;
pub(crate) use tunnel::{connect, loopback, upstream_conn};

pub use config::{AuthConfig, ProxyConfig, Timeouts};
pub use credential::{Credential, CredentialError, CredentialSource};
pub use endpoint::EndpointRule;
pub use error::{FilterError, ProxyError};
pub use reverse::RouteStatus;
pub use route::{validate_routes, InjectMode, RouteConfig, RouteError};
pub use server::{start, start_with_listener, ProxyHandle};
pub use token::SessionToken;
pub use upstream::UpstreamProxyConfig;
