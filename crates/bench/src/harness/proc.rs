//! What Linux's `/proc` says, read with the `procfs` crate: a process's
//! children, environment, memory and CPU time, the CPU time of the machine
//! and of each core, the load average and the cores this process may use.
//! The scenarios find the fleet's processes here and tell whether they are
//! really gone.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::time::Duration;

use procfs::process::{Process, Stat};
use procfs::{Current as _, CurrentSI as _, KernelStats, LoadAverage};

/// One process, robust to pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot; with the pid it names one
    /// process even after the pid is reused.
    pub start_time: u64,
}

impl ProcessId {
    /// The process that has `pid` now.
    pub fn of(pid: u32) -> Option<Self> {
        stat(pid).map(|s| Self {
            pid,
            start_time: s.starttime,
        })
    }

    /// Whether this very process still runs. A zombie does not: it has
    /// exited and only waits for a parent (in a container, PID 1 may never
    /// reap it).
    pub fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.starttime == self.start_time && is_alive(&s))
    }
}

/// `/proc/<pid>/stat`, if the process exists.
fn stat(pid: u32) -> Option<Stat> {
    Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()
}

/// Not a zombie (Z) nor dead (X).
fn is_alive(stat: &Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X')
}

/// Living processes whose parent is `ppid`, in pid order.
pub fn children_of(ppid: u32) -> Vec<ProcessId> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut children: Vec<ProcessId> = all
        .filter_map(|p| p.ok()?.stat().ok())
        .filter(|s| u32::try_from(s.ppid).ok() == Some(ppid) && is_alive(s))
        .filter_map(|s| {
            Some(ProcessId {
                pid: u32::try_from(s.pid).ok()?,
                start_time: s.starttime,
            })
        })
        .collect();
    children.sort_by_key(|c| c.pid);
    children
}

/// The value of `name` in the environment `pid` was started with (same user
/// only).
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let environ: HashMap<OsString, OsString> = Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .environ()
        .ok()?;
    environ
        .get(&OsString::from(name))?
        .to_str()
        .map(str::to_owned)
}

/// The instance name a fleet process was started with (`BAZAAR_INSTANCE`),
/// else `pid N`.
pub fn instance_name(pid: u32) -> String {
    env_var(pid, "BAZAAR_INSTANCE").unwrap_or_else(|| format!("pid {pid}"))
}

/// The resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = Process::new(i32::try_from(pid)?)?.status()?;
    let kib = status
        .vmrss
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(kib * 1024)
}

/// User plus system CPU time of `pid`, in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.utime + s.stime)
}

/// User plus system CPU time of this process, in clock ticks.
pub fn own_ticks() -> Option<u64> {
    let s = Process::myself().ok()?.stat().ok()?;
    Some(s.utime + s.stime)
}

/// Clock ticks per second, to turn ticks into CPU seconds.
pub fn ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    LoadAverage::current().ok().map(|l| f64::from(l.one))
}

/// The cores this process may run on (`Cpus_allowed_list`), in order.
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(status) = Process::myself().and_then(|p| p.status()) else {
        return Vec::new();
    };
    status
        .cpus_allowed_list
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(a, b)| a..=b)
        .filter_map(|c| usize::try_from(c).ok())
        .collect()
}

/// Clock ticks of the machine or one core, from `/proc/stat`. The one
/// definition of busy the benchmarks use: everything but idle and iowait
/// (user, nice, system, irq, softirq and steal; guest time is in user).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// Idle and iowait.
    pub idle: u64,
    /// Busy: everything else.
    pub busy: u64,
}

impl CpuTicks {
    /// Idle plus busy.
    pub fn total(&self) -> u64 {
        self.idle + self.busy
    }

    /// The whole machine's ticks now (all cores), or core `core`'s.
    pub fn now(core: Option<usize>) -> Option<Self> {
        let stats = KernelStats::current().ok()?;
        let time = match core {
            None => &stats.total,
            Some(core) => stats.cpu_time.get(core)?,
        };
        Some(Self::from(time))
    }
}

impl From<&procfs::CpuTime> for CpuTicks {
    fn from(t: &procfs::CpuTime) -> Self {
        let more = |v: Option<u64>| v.unwrap_or(0);
        Self {
            idle: t.idle + more(t.iowait),
            busy: t.user + t.nice + t.system + more(t.irq) + more(t.softirq) + more(t.steal),
        }
    }
}

/// The idle share between two readings.
pub fn idle_share(before: CpuTicks, after: CpuTicks) -> Option<f64> {
    let total = after
        .total()
        .checked_sub(before.total())
        .filter(|&t| t > 0)?;
    Some(after.idle.saturating_sub(before.idle) as f64 / total as f64)
}

/// What ran on the fleet's core, and how much of it was the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreReading {
    /// The core.
    pub core: CpuTicks,
    /// User and system ticks of the fleet's processes.
    pub fleet: u64,
}

impl CoreReading {
    /// Reads `core` and the processes `fleet` (pinned to it).
    pub fn now(core: usize, fleet: &[u32]) -> Option<Self> {
        Some(Self {
            core: CpuTicks::now(Some(core))?,
            fleet: fleet.iter().filter_map(|&pid| process_ticks(pid)).sum(),
        })
    }
}

/// The share of the fleet's core that processes outside the fleet used
/// between two readings.
pub fn other_work(before: CoreReading, after: CoreReading) -> Option<f64> {
    let total = after
        .core
        .total()
        .checked_sub(before.core.total())
        .filter(|&t| t > 0)?;
    let busy = after.core.busy.saturating_sub(before.core.busy);
    let fleet = after.fleet.saturating_sub(before.fleet);
    Some(busy.saturating_sub(fleet) as f64 / total as f64)
}

/// The key of the whole machine's CPU among the processes' (all CPUs,
/// every process: the PostgreSQL server and anything else running too).
pub const MACHINE: &str = "(machine)";

/// CPU of each process between two readings of ticks `wall` apart, in cores.
pub fn cpu_share(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    wall: Duration,
) -> Vec<(String, f64)> {
    let secs = wall.as_secs_f64().max(1e-9);
    after
        .iter()
        .map(|(name, ticks)| {
            let start = before.get(name).copied().unwrap_or(0);
            (
                name.clone(),
                ticks.saturating_sub(start) as f64 / ticks_per_second() / secs,
            )
        })
        .collect()
}

/// How long to wait at most for the fleet's core to be idle (after the
/// demo seed).
pub const SETTLE_LIMIT: Duration = Duration::from_secs(15);
/// A core counts as idle above this share of idle time.
const IDLE_SHARE: f64 = 0.9;

/// Waits until `core` (all cores when `None`) is idle over half a second;
/// how long that took, or `None` if it was still busy after
/// [`SETTLE_LIMIT`].
pub fn settle(core: Option<usize>) -> Option<Duration> {
    let started = std::time::Instant::now();
    let times = || CpuTicks::now(core);
    while started.elapsed() < SETTLE_LIMIT {
        let before = times()?;
        std::thread::sleep(Duration::from_millis(500));
        let after = times()?;
        if idle_share(before, after).is_some_and(|idle| idle >= IDLE_SHARE) {
            return Some(started.elapsed());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use procfs::{ExplicitSystemInfo, FromBufReadSI as _};

    use super::*;

    #[test]
    fn this_process_is_visible() {
        let me = std::process::id();
        let id = ProcessId::of(me).unwrap();
        assert!(id.is_running());
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(process_ticks(me).is_some() && own_ticks().is_some());
        assert!(!allowed_cpus().is_empty());
        let stale = ProcessId {
            start_time: id.start_time + 1,
            ..id
        };
        assert!(!stale.is_running());
    }

    #[test]
    fn busy_is_everything_but_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 7 1 2 3 0 0\ncpu0 50 2 25 500 3 0 1 1 0 0\n\
                    intr 1\nctxt 1\nbtime 1\nprocesses 1\n";
        let info = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: true,
        };
        let stats = KernelStats::from_buf_read(stat.as_bytes(), &info).unwrap();
        let machine = CpuTicks::from(&stats.total);
        assert_eq!(
            machine,
            CpuTicks {
                idle: 1007,
                busy: 161
            }
        );
        assert_eq!(CpuTicks::from(&stats.cpu_time[0]).busy, 79);
    }

    #[test]
    fn idle_time_and_other_work_on_a_core() {
        let ticks = |idle, busy| CpuTicks { idle, busy };
        assert_eq!(idle_share(ticks(40, 10), ticks(130, 20)), Some(0.9));
        assert_eq!(idle_share(ticks(40, 10), ticks(40, 10)), None);

        // 100 ticks: 30 busy, of which the fleet's 25.
        let before = CoreReading::default();
        let after = CoreReading {
            core: ticks(70, 30),
            fleet: 25,
        };
        assert_eq!(other_work(before, after), Some(0.05));
        assert_eq!(other_work(before, before), None);
        // Fleet ticks counted a little ahead of the core's: no other work.
        let ahead = CoreReading { fleet: 40, ..after };
        assert_eq!(other_work(before, ahead), Some(0.0));
    }
}
