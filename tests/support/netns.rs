//! Network namespaces with a veth pair, for tests that need hosts of their own.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace joined to this one by a veth pair; deleted on drop.
///
/// The host end gets `host_addr_cidr` here, the namespace end gets `ns_addr_cidr` there, both
/// links and the namespace's `lo` are up, and the namespace routes by default via the host
/// end. Needs `ip` (iproute2) and `CAP_NET_ADMIN`.
pub struct NetNs {
    /// The namespace name (`ip netns` list).
    pub name: String,
    /// The host end's address, without prefix length.
    pub host_addr: String,
    /// The namespace end's address, without prefix length.
    pub ns_addr: String,
    host_if: String,
}

impl NetNs {
    /// Creates the namespace and the veth pair; `Err` names the step that failed.
    ///
    /// Tests must turn `Err` into a failure (`.expect(...)`), never a silent pass.
    pub fn new(
        name_prefix: &str,
        host_addr_cidr: &str,
        ns_addr_cidr: &str,
    ) -> Result<NetNs, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        match Command::new("ip").arg("-V").stdout(Stdio::null()).status() {
            Ok(s) if s.success() => {}
            _ => return Err("`ip` (iproute2) not found: install iproute2 to run this test".into()),
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:x}{n}", std::process::id());
        let name = format!("{name_prefix}-{id}");
        // Interface names are limited to 15 bytes.
        let host_if: String = format!("nh{id}").chars().take(15).collect();
        let ns_if: String = format!("nn{id}").chars().take(15).collect();
        let addr = |cidr: &str| cidr.split('/').next().unwrap_or(cidr).to_string();
        let ns = NetNs {
            name: name.clone(),
            host_addr: addr(host_addr_cidr),
            ns_addr: addr(ns_addr_cidr),
            host_if: host_if.clone(),
        };
        ip(&["netns", "add", &name])?;
        // From here on, dropping `ns` cleans up whatever was made.
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &name])?;
        ip(&["addr", "add", host_addr_cidr, "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        ip(&["-n", &name, "addr", "add", ns_addr_cidr, "dev", &ns_if])?;
        ip(&["-n", &name, "link", "set", &ns_if, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        ip(&["-n", &name, "route", "add", "default", "via", &ns.host_addr])?;
        Ok(ns)
    }

    /// Starts `cmd` (program and arguments) inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .spawn()
            .expect("spawn ip netns exec")
    }

    /// Like [`NetNs::exec`], for callers that want to set up stdio or env first.
    pub fn command(&self, cmd: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(cmd);
        command
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end, which removes the pair.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// Runs `ip args`; `Err` carries the command and its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
