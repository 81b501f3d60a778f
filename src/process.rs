//! Child `leader` server processes, started and stopped by pid: `leader up`, `leader
//! failover` and the multi-process tests share this one place.
//!
//! Every child is stopped by its own OS pid (never `pkill`), when asked and when the
//! [`ProcessCluster`] is dropped. On Linux a child also gets SIGKILL if the thread that
//! started it dies, so a crashed test or `up` leaves no orphans behind.

use crate::core::NodeId;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a child gets to exit after SIGTERM before it is killed.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// Where children's stderr goes.
#[derive(Clone, Debug)]
pub enum ChildLogs {
    /// Shared with ours (for `leader up`).
    Inherit,
    /// Discarded.
    Null,
    /// Appended to `<dir>/server-<pid>.log` (for tests: kept for post-mortems).
    Dir(PathBuf),
}

/// A set of `leader --pid N --config FILE` child processes.
pub struct ProcessCluster {
    exe: PathBuf,
    config_path: PathBuf,
    logs: ChildLogs,
    extra_args: Vec<String>,
    children: BTreeMap<NodeId, Child>,
}

impl ProcessCluster {
    /// A cluster whose servers run `exe` (the `leader` binary) with `config_path`.
    pub fn new(exe: impl AsRef<Path>, config_path: impl AsRef<Path>, logs: ChildLogs) -> ProcessCluster {
        ProcessCluster {
            exe: exe.as_ref().to_path_buf(),
            config_path: config_path.as_ref().to_path_buf(),
            logs,
            extra_args: Vec::new(),
            children: BTreeMap::new(),
        }
    }

    /// Arguments appended to every child's command line.
    pub fn with_args(mut self, args: &[&str]) -> ProcessCluster {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Start server `pid` (it must not be running). Returns its OS pid.
    pub fn start(&mut self, pid: NodeId) -> io::Result<u32> {
        assert!(!self.children.contains_key(&pid), "server {pid} is already running");
        let mut command = Command::new(&self.exe);
        command
            .arg("--pid")
            .arg(pid.0.to_string())
            .arg("--config")
            .arg(&self.config_path)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        command.stderr(match &self.logs {
            ChildLogs::Inherit => Stdio::inherit(),
            ChildLogs::Null => Stdio::null(),
            ChildLogs::Dir(dir) => {
                let file = OpenOptions::new().create(true).append(true).open(dir.join(format!("server-{pid}.log")))?;
                Stdio::from(file)
            }
        });
        die_with_parent(&mut command);
        let child = command.spawn()?;
        let os_pid = child.id();
        self.children.insert(pid, child);
        Ok(os_pid)
    }

    /// The OS pid of server `pid`, if this cluster started it and it was not stopped.
    pub fn os_pid(&self, pid: NodeId) -> Option<u32> {
        self.children.get(&pid).map(Child::id)
    }

    /// The servers this cluster has running (or exited but not yet reaped).
    pub fn running(&self) -> Vec<NodeId> {
        self.children.keys().copied().collect()
    }

    /// Crash server `pid` with SIGKILL and reap it.
    pub fn kill(&mut self, pid: NodeId) -> io::Result<()> {
        if let Some(mut child) = self.children.remove(&pid) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stop server `pid` with SIGTERM, SIGKILL after [`TERMINATE_GRACE`]; reap it.
    pub fn terminate(&mut self, pid: NodeId) -> io::Result<()> {
        if let Some(mut child) = self.children.remove(&pid) {
            terminate_child(&mut child)?;
        }
        Ok(())
    }

    /// Stop every server (SIGTERM, then SIGKILL after the grace period).
    pub fn stop_all(&mut self) {
        let children = std::mem::take(&mut self.children);
        for (pid, mut child) in children {
            if let Err(e) = terminate_child(&mut child) {
                log::warn!("stopping server {pid}: {e}");
            }
        }
    }

    /// Servers that exited on their own since the last call, with their exit status.
    pub fn reap_exited(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        for (pid, child) in self.children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((*pid, status));
            }
        }
        for (pid, _) in &exited {
            self.children.remove(pid);
        }
        exited
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn terminate_child(child: &mut Child) -> io::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    send_sigterm(child.id());
    let deadline = Instant::now() + TERMINATE_GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill()?;
    child.wait().map(|_| ())
}

fn send_sigterm(os_pid: u32) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped (so it cannot be reused yet).
    unsafe {
        libc::kill(os_pid as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; it only sets a flag on the child before exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}
