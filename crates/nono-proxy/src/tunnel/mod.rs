//! CONNECT tunnels: the CONNECT handler, the byte relay, connecting to checked addresses and
//! the loopback special cases.

pub(crate) mod connect;
pub(crate) mod loopback;
pub mod relay;
pub(crate) mod upstream_conn;
