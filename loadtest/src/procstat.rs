//! CPU time and resident memory of process trees, from `/proc`.
//!
//! A server is given by the pid(s) of its top process(es); a sample sums `utime + stime`
//! (`/proc/<pid>/stat`) and `VmRSS` (`/proc/<pid>/status`) over those and every live
//! descendant (nginx's workers, Pushpin's runner children). `/proc` reports CPU in
//! `USER_HZ` ticks, which the kernel ABI fixes at 100 per second.

use std::collections::HashMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// One measurement of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// User + system CPU seconds, summed over the tree.
    pub cpu_s: f64,
    /// Resident memory in KiB, summed over the tree.
    pub rss_kib: u64,
    /// Live processes in the tree.
    pub procs: u32,
}

/// `(ppid, utime + stime ticks)` of one process, from its `stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn read_stat(pid: u32) -> Option<(u32, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `VmRSS` of one process in KiB (0 for a zombie or a vanished process).
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or(0)
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds used so far by this process (all threads).
pub fn self_cpu_s() -> f64 {
    read_stat(std::process::id())
        .map(|(_, t)| t as f64 / TICKS_PER_SEC)
        .unwrap_or(0.0)
}

/// Machine-wide CPU time so far, from the first line of `/proc/stat`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    /// user + nice + system: time charged to processes.
    pub process_s: f64,
    /// softirq + irq: interrupt work (loopback networking runs much of its receive path
    /// here), charged to no process.
    pub irq_s: f64,
    /// Time the hypervisor gave to someone else.
    pub steal_s: f64,
}

/// Reads the machine-wide CPU counters.
pub fn machine_cpu() -> MachineCpu {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return MachineCpu::default();
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return MachineCpu::default();
    };
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0) as f64 / TICKS_PER_SEC;
    // user nice system idle iowait irq softirq steal
    MachineCpu {
        process_s: get(0) + get(1) + get(2),
        irq_s: get(5) + get(6),
        steal_s: get(7),
    }
}

/// The pids of `roots` and all their live descendants.
pub fn tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = read_stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out: Vec<u32> = Vec::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(pid) = stack.pop() {
        if out.contains(&pid) || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        out.push(pid);
        if let Some(kids) = children.get(&pid) {
            stack.extend(kids);
        }
    }
    out
}

/// Samples the tree under `roots`; `t` is stored as given.
pub fn sample(roots: &[u32], t: f64) -> Sample {
    let mut s = Sample {
        t,
        ..Sample::default()
    };
    for pid in tree(roots) {
        if let Some((_, ticks)) = read_stat(pid) {
            s.cpu_s += ticks as f64 / TICKS_PER_SEC;
            s.rss_kib += rss_kib(pid);
            s.procs += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "4242 (nginx: worker) S 4241 4241 4241 0 -1 4194624 100 0 0 0 250 40 0 0 20 0 1 0 5 1000 50";
        assert_eq!(parse_stat(line), Some((4241, 290)));
    }

    #[test]
    fn machine_counters_move_forward() {
        let a = machine_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let b = machine_cpu();
        assert!(b.process_s >= a.process_s);
        assert!(a.process_s > 0.0);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(&[std::process::id()], 0.0);
        assert!(s.procs >= 1);
        assert!(s.rss_kib > 0);
    }
}
