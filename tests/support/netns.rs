//! Network namespaces with a veth pair, for tests that need hosts of their own.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Resolver config inside the namespace: only its own loopback, which refuses at once.
const RESOLV_CONF: &str = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

/// A network namespace joined to this one by a veth pair; deleted on drop.
///
/// The host end gets `host_addr_cidr` here, the namespace end gets `ns_addr_cidr` there, and
/// both links and the namespace's `lo` are up. The namespace has no default route, so its
/// programs reach only the veth subnet, and its resolver (`/etc/netns/NAME/resolv.conf`, which
/// `ip netns exec` mounts) points at the namespace's own loopback, so lookups fail at once
/// instead of timing out (Python's `http.server` does a reverse lookup when it binds).
/// Needs `ip` (iproute2) and `CAP_NET_ADMIN`.
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
        let etc = ns.etc_dir();
        std::fs::create_dir_all(&etc).map_err(|e| format!("create {}: {e}", etc.display()))?;
        std::fs::write(etc.join("resolv.conf"), RESOLV_CONF)
            .map_err(|e| format!("write {}/resolv.conf: {e}", etc.display()))?;
        Ok(ns)
    }

    /// `/etc/netns/NAME`, whose files `ip netns exec` mounts over their `/etc` namesakes.
    fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(&self.name)
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
        let _ = std::fs::remove_dir_all(self.etc_dir());
        // Only succeeds once no other namespace's files remain.
        let _ = std::fs::remove_dir("/etc/netns");
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
