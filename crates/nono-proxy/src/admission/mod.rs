//! Admission: what a target must pass before the proxy connects anywhere — the allowlist, the
//! deny list, name resolution with every address checked, and the budget of connections that
//! have not authenticated yet.

pub mod deny;
pub mod dns;
pub mod filter;
pub mod gate;
pub mod preauth;
