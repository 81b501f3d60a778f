//! The namespaces of one test (see the parent module for the topology): made with `ip`,
//! filter tables replaced with `iptables-restore`, everything deleted on drop.

use super::{addr, in_netns, NAME_PREFIX, OBSERVER_ADDR};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A tool by name, on PATH or in the sbin directories (not always on a test's PATH).
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Why the harness cannot run here, if it cannot.
pub(super) fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and iptables need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    for name in ["ip", "iptables-restore"] {
        if tool(name).is_none() {
            return Some(format!("`{name}` is not installed (apt-get install iproute2 iptables)"));
        }
    }
    None
}

/// Run `program args` (stdin from `input`); Err with its stderr if it fails.
fn run(program: &Path, args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if let Some(text) = input {
        child.stdin.take().expect("piped").write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{} {}: {}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Remove namespaces left by test processes that no longer exist (killed before their Drop).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    let ip = tool("ip").expect("checked");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(owner) = name.strip_prefix(NAME_PREFIX).and_then(|r| r.split('-').next()) else { continue };
        if owner.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = run(&ip, &["netns", "del", &name], None);
        }
    }
}

/// The namespaces of one test, deleted (with their veths and bridge) on drop.
pub struct Net {
    pub(super) ip: PathBuf,
    iptables_restore: PathBuf,
    /// Namespaces made, in creation order.
    made: Vec<String>,
    switch: String,
    /// Server pid -> its namespace.
    nodes: BTreeMap<u64, String>,
    pub(super) observer: String,
}

/// Why [`Net::create`] failed: namespaces cannot be made here at all (skip the test), or
/// something later broke (a harness bug: fail).
pub(super) enum NetError {
    Unsupported(String),
    Broken(String),
}

impl Net {
    pub(super) fn create(pids: &[u64]) -> Result<Net, NetError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        sweep_stale();
        let prefix = format!("{NAME_PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut net = Net {
            ip: tool("ip").expect("checked"),
            iptables_restore: tool("iptables-restore").expect("checked"),
            made: Vec::new(),
            switch: format!("{prefix}-sw"),
            nodes: pids.iter().map(|&p| (p, format!("{prefix}-s{p}"))).collect(),
            observer: format!("{prefix}-obs"),
        };
        let switch = net.switch.clone();
        net.add_namespace(&switch).map_err(NetError::Unsupported)?;
        net.build().map_err(NetError::Broken)?;
        Ok(net)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        run(&self.ip, &["netns", "add", name], None)?;
        self.made.push(name.to_string());
        // Only 198.18.0.0/15 in the test's network: no IPv6 link-local addresses either.
        in_netns(name, || {
            for conf in ["all", "default"] {
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")
                    .map_err(|e| format!("disable IPv6 in {name}: {e}"))?;
            }
            Ok(())
        })
    }

    fn build(&mut self) -> Result<(), String> {
        let sw = self.switch.clone();
        self.ip_in(&sw, &["link", "add", "br0", "type", "bridge"])?;
        self.ip_in(&sw, &["link", "set", "br0", "up"])?;
        let mut hosts: Vec<(String, Ipv4Addr)> = self.nodes.iter().map(|(&p, ns)| (ns.clone(), addr(p))).collect();
        hosts.push((self.observer.clone(), OBSERVER_ADDR));
        for (i, (ns, address)) in hosts.iter().enumerate() {
            self.add_namespace(ns)?;
            let port = format!("v{i}");
            self.ip_in(&sw, &["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
            self.ip_in(&sw, &["link", "set", &port, "master", "br0", "up"])?;
            self.ip_in(ns, &["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
            self.ip_in(ns, &["link", "set", "eth0", "up"])?;
            self.ip_in(ns, &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn ip_in(&self, ns: &str, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run(&self.ip, &all, None)
    }

    /// Server `pid`'s namespace.
    pub fn node(&self, pid: u64) -> &str {
        &self.nodes[&pid]
    }

    /// Replace the filter table of server `pid`'s namespace with `rules` (-A lines).
    pub(super) fn apply(&self, pid: u64, rules: &[String]) {
        let mut text = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for rule in rules {
            text.push_str(rule);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        let ns = self.node(pid);
        let args = ["netns", "exec", ns, &self.iptables_restore.to_string_lossy()];
        run(&self.ip, &args, Some(&text)).unwrap_or_else(|e| panic!("iptables in {ns}: {e}"));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Servers first, switch last: deleting a namespace destroys its end of each veth, and
        // with it the other end.
        for name in self.made.iter().rev() {
            if let Err(e) = run(&self.ip, &["netns", "del", name], None) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}
