//! What Linux's `/proc` says about processes: parent, state, start time and
//! resident memory. The benchmark and the system tests use it to find the
//! launcher's children and to tell whether they are really gone.

use std::fs;
use std::io;

/// One line of `/proc/<pid>/stat`, the fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Process id.
    pub pid: u32,
    /// State letter: R, S, D, Z (zombie), X (dead)…
    pub state: char,
    /// Parent's process id.
    pub ppid: u32,
    /// Start time in clock ticks since boot; with the pid it names one
    /// process even after the pid is reused.
    pub start_time: u64,
}

/// Parses the contents of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    // The command name sits in parentheses and may itself hold spaces or
    // parentheses, so split at the last ')'.
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = tail.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // After state and ppid, start time is the 20th remaining field (field 22
    // of the whole line).
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        start_time,
    })
}

/// Reads `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))
}

/// The resident set size in bytes from the contents of `/proc/<pid>/status`.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
}

/// Living processes whose parent is `ppid`, in pid order.
pub fn children_of(ppid: u32) -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<Stat> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat(pid).ok())
        .filter(|s| s.ppid == ppid && !matches!(s.state, 'Z' | 'X'))
        .collect();
    children.sort_by_key(|s| s.pid);
    children
}

/// The value of `name` in the environment `pid` was started with (same user
/// only).
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let (key, value) = entry.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// One process, robust to pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcessId {
    /// The process that has `pid` now.
    pub fn of(pid: u32) -> Option<Self> {
        stat(pid).ok().map(|s| Self {
            pid,
            start_time: s.start_time,
        })
    }

    /// Whether this very process still runs. A zombie does not: it has
    /// exited and only waits for a parent (in a container, PID 1 may never
    /// reap it).
    pub fn is_running(&self) -> bool {
        stat(self.pid)
            .is_ok_and(|s| s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X'))
    }
}

impl From<Stat> for ProcessId {
    fn from(s: Stat) -> Self {
        Self {
            pid: s.pid,
            start_time: s.start_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names() {
        let line = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                state: 'S',
                ppid: 17,
                start_time: 987654
            }
        );
    }

    #[test]
    fn vm_rss_in_bytes() {
        let status = "Name:\tbazaar\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_is_visible() {
        let me = std::process::id();
        let id = ProcessId::of(me).unwrap();
        assert!(id.is_running());
        assert!(rss_bytes(me).unwrap() > 0);
        let stale = ProcessId {
            start_time: id.start_time + 1,
            ..id
        };
        assert!(!stale.is_running());
    }
}
