//! nono-proxy: the network filtering proxy of the nono sandbox.
//!
//! It runs unsandboxed in the supervisor (or standalone as `nono proxy`); confined clients
//! reach the network only through it. Modules:
//!
//! - [`filter`]: host allowlist patterns (`host`, `*.suffix`, `host:port`, IP literals).
//! - [`deny`]: the always-denied list (cloud metadata, link-local, this machine's loopback and
//!   interface addresses unless explicit, the proxy itself), with IPv4-in-IPv6 and non-dotted
//!   IPv4 handling.
//! - [`dns`]: injectable name resolution.
//! - [`gate`]: admission of one target: deny list, allowlist, resolve, check every address.
//! - [`token`]: the session token and its constant-time check.
//! - [`audit`]: decision events, a bounded buffer and log lines.
//! - [`config`]: configuration and its defaults.
//! - [`env`]: the variables a client needs (`HTTP_PROXY`, smart `NO_PROXY`, ...).
//! - [`server`]: listener, connection cap, dispatch, graceful shutdown.
//! - [`preauth`]: the small budget and short deadline of connections that have not yet
//!   authenticated, so they never hold the slots of those that have.
//! - [`upstream`]: chaining through an upstream (corporate) proxy, bypass patterns, and what
//!   the local checks can see when the upstream resolves names.
//! - [`route`]: credential route configuration ([`RouteConfig`]) and its validation.
//! - [`credential`]: credential sources (keyring, env, file, command) held in `Zeroizing`.
//! - [`endpoint`]: path normalisation and endpoint rules (`SERVICE:METHOD:/path/glob`).
//! - [`inject`]: phantom-token checks and credential injection per inject mode.
//! - [`reverse`]: the credential-injecting reverse proxy; `reverse_conn`: its pooled,
//!   TLS-verified upstream connections.
//! - `connect`: CONNECT tunnels; `forward`: plain HTTP forwarding; `relay`: the byte relay
//!   (`splice(2)` on Linux); `upstream_conn`: connecting to checked addresses.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
mod connect;
pub mod credential;
pub mod deny;
pub mod dns;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod filter;
mod forward;
pub mod gate;
pub mod inject;
mod loopback;
pub mod preauth;
pub mod relay;
mod respond;
pub mod reverse;
mod reverse_conn;
pub mod route;
pub mod server;
pub mod token;
pub mod upstream;
mod upstream_conn;

pub use config::{AuthConfig, ProxyConfig, Timeouts};
pub use credential::{Credential, CredentialError, CredentialSource};
pub use endpoint::EndpointRule;
pub use error::{FilterError, ProxyError};
pub use reverse::RouteStatus;
pub use route::{validate_routes, InjectMode, RouteConfig, RouteError};
pub use server::{start, start_with_listener, ProxyHandle};
pub use token::SessionToken;
pub use upstream::UpstreamProxyConfig;
