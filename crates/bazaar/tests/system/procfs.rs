//! The few `/proc` readings the system tests need (the launcher's children,
//! their environment, whether a process still runs), on the `procfs` crate.

use std::ffi::OsString;

use ::procfs::process::{Process, Stat};

/// One process, robust to pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcessId {
    /// Whether this very process still runs; a zombie does not.
    pub fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.starttime == self.start_time && alive(&s))
    }
}

fn stat(pid: u32) -> Option<Stat> {
    Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()
}

fn alive(stat: &Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X')
}

/// A child process as listed: [`ProcessId`] names it for good.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// Process id.
    pub pid: u32,
    start_time: u64,
}

impl From<Child> for ProcessId {
    fn from(c: Child) -> Self {
        Self {
            pid: c.pid,
            start_time: c.start_time,
        }
    }
}

/// Living processes whose parent is `ppid`, in pid order.
pub fn children_of(ppid: u32) -> Vec<Child> {
    let Ok(all) = ::procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut children: Vec<Child> = all
        .filter_map(|p| p.ok()?.stat().ok())
        .filter(|s| u32::try_from(s.ppid).ok() == Some(ppid) && alive(s))
        .filter_map(|s| {
            Some(Child {
                pid: u32::try_from(s.pid).ok()?,
                start_time: s.starttime,
            })
        })
        .collect();
    children.sort_by_key(|c| c.pid);
    children
}

/// The value of `name` in the environment `pid` was started with.
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let environ = Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .environ()
        .ok()?;
    environ
        .get(&OsString::from(name))?
        .to_str()
        .map(str::to_owned)
}
