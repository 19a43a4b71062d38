//! Socket tuning for loopback peers.
//!
//! Pacing congestion controls (BBR, the default on some systems) space out every packet with
//! timers. Between two processes on one machine there is no link to pace for, and the timers
//! cost a loopback tunnel most of its throughput (benchmark: 0.2× direct with every socket on
//! BBR, about 0.6× with every socket on CUBIC). The proxy's loopback sockets therefore use
//! CUBIC, or Reno where CUBIC is not available; connections to other hosts keep the system's
//! choice. (The client's own socket keeps whatever its system chose.)
//!
//! The choice is made before the handshake — on the listening socket, whose accepted sockets
//! inherit it, and on the upstream socket before `connect` — because a pacing control
//! initialised at the handshake leaves the socket pacing after a later switch (measured: the
//! late switch kept ~17 % of the bench's CPU in pacing timers; bulk TLS 0.76× → 0.89×).

use std::net::IpAddr;

/// Congestion controls without pacing, in order of preference (Reno is always built in).
#[cfg(target_os = "linux")]
const UNPACED: [&str; 2] = ["cubic", "reno"];

/// Switches `stream` to a non-pacing congestion control when its peer is on loopback.
/// Best effort: on failure the socket keeps working with the system default.
pub fn tune(stream: &impl std::os::fd::AsFd, peer: IpAddr) {
    if is_loopback(peer) {
        set_unpaced(stream);
    }
}

/// Switches a socket (a listener passes it on to the sockets it accepts) to a non-pacing
/// congestion control. Best effort.
pub fn set_unpaced(socket: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
        for cc in UNPACED {
            if setsockopt(socket, TcpCongestion, &std::ffi::OsString::from(cc)).is_ok() {
                return;
            }
        }
        tracing::debug!("could not set a non-pacing congestion control on a loopback socket");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt::TcpCongestion};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn loopback_sockets_get_an_unpaced_congestion_control() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        tune(&s, "127.0.0.1".parse().unwrap());
        let cc = getsockopt(&s, TcpCongestion).unwrap();
        let cc = cc.to_string_lossy();
        assert!(UNPACED.iter().any(|u| cc.starts_with(u)), "{cc}");
    }

    fn unpaced(s: &impl std::os::fd::AsFd) -> bool {
        let cc = getsockopt(s, TcpCongestion).expect("TCP_CONGESTION");
        let cc = cc.to_string_lossy();
        UNPACED.iter().any(|u| cc.starts_with(u))
    }

    /// Sockets must carry their congestion control from the handshake on: one switched after
    /// a pacing control was initialised keeps pacing.
    #[tokio::test]
    async fn sockets_are_unpaced_from_the_handshake() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        set_unpaced(&l);
        let addrs = [l.local_addr().unwrap()];
        let out = crate::upstream_conn::connect_checked(&addrs, std::time::Duration::from_secs(5));
        let (out, accepted) = tokio::join!(out, l.accept());
        assert!(unpaced(&out.unwrap()), "connecting side");
        assert!(unpaced(&accepted.unwrap().0), "accepted side");
    }

    #[tokio::test]
    async fn other_peers_keep_the_system_default() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let before = getsockopt(&s, TcpCongestion).unwrap();
        tune(&s, "192.0.2.7".parse().unwrap());
        assert_eq!(getsockopt(&s, TcpCongestion).unwrap(), before);
    }

    #[test]
    fn loopback_includes_mapped_ipv4() {
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.9.9.9".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }
}
