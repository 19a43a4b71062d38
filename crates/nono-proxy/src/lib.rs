//! nono-proxy: the network filtering proxy of the nono sandbox.
#![forbid(unsafe_code)]

pub mod deny;
pub mod error;
pub mod filter;

pub use error::{FilterError, ProxyError};
