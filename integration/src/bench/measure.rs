//! Measurements: latency percentiles from raw samples, medians, and a process's resident
//! memory as the kernel reports it.

use std::time::Duration;

use serde::Serialize;

use super::BenchError;

/// Percentiles of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Latency {
    /// The percentiles of `samples` (nearest rank), or `None` without samples.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| micros(percentile(samples, q));
        Some(Self {
            samples: samples.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: at(1.0),
        })
    }
}

/// The `q` quantile (0 to 1) of sorted, non-empty `sorted`, by nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, fractional.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, fractional.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The largest of `values`; 0 when empty.
pub fn worst(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// CPU time process `pid` has used so far, user and system, all its threads.
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(BenchError::io(format!("read {path}")))?;
    // Fields after the command name (which may hold spaces): state is the first, utime
    // and stime the 12th and 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(BenchError::failed(format!("read {path}"), "no utime/stime"));
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100);
    Ok(Duration::from_nanos(
        (user + system) * 1_000_000_000 / per_second,
    ))
}

/// The write system calls process `pid` has made so far, all its threads (`syscw` of
/// `/proc/<pid>/io`: `write`, `writev` and their kin). Socket writes of either server go
/// through `writev` (tokio-rustls, and the coalescing layer, write vectored), which is
/// counted; `send`/`sendmsg` would not be. Reads are not counted: tokio reads sockets with
/// `recv`, which `syscr` leaves out.
pub fn write_calls(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(format!("read {path}")))?;
    text.lines()
        .find_map(|line| line.strip_prefix("syscw:")?.trim().parse::<u64>().ok())
        .ok_or_else(|| BenchError::failed(format!("read {path}"), "no syscw"))
}

/// Pins every thread of process `pid` to CPU `cpu` (threads it starts later inherit it).
pub fn pin_process(pid: u32, cpu: usize) -> Result<(), BenchError> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(BenchError::io(format!("read {dir}")))?;
    for task in tasks.flatten() {
        if let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        {
            pin(nix::unistd::Pid::from_raw(tid), cpu)?;
        }
    }
    Ok(())
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_this_thread(cpu: usize) -> Result<(), BenchError> {
    pin(nix::unistd::Pid::from_raw(0), cpu)
}

fn pin(tid: nix::unistd::Pid, cpu: usize) -> Result<(), BenchError> {
    let mut set = nix::sched::CpuSet::new();
    let failed = |e: nix::Error| BenchError::failed(format!("pin thread {tid} to CPU {cpu}"), e);
    set.set(cpu).map_err(failed)?;
    nix::sched::sched_setaffinity(tid, &set).map_err(failed)
}

/// A process's memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_kib: u64,
    /// Resident anonymous memory, KiB (`RssAnon`): the heap, with the threads' stacks;
    /// what the process allocated, without its mapped code and files.
    pub anon_kib: u64,
}

impl Memory {
    /// Resident size in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// The memory of process `pid`.
pub fn memory_of(pid: u32) -> Result<Memory, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(BenchError::io(format!("read {path}")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| BenchError::failed(format!("read {path}"), format!("no {name}")))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let latency = Latency::of(&mut samples).expect("samples");
        assert_eq!(latency.samples, 100);
        assert_eq!(latency.p50_us, 50.0);
        assert_eq!(latency.p90_us, 90.0);
        assert_eq!(latency.p99_us, 99.0);
        assert_eq!(latency.max_us, 100.0);
        assert_eq!(Latency::of(&mut []), None);
        let mut one = [Duration::from_micros(7)];
        assert_eq!(Latency::of(&mut one).map(|l| l.p50_us), Some(7.0));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(worst(&[1.0, 5.0, 2.0]), 5.0);
    }

    #[test]
    fn this_process_uses_cpu_time() {
        let before = cpu_time(std::process::id()).expect("own stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let used = cpu_time(std::process::id()).expect("own stat") - before;
        assert!(used >= Duration::from_millis(100), "{used:?}");
    }

    #[test]
    fn this_process_has_resident_memory() {
        let memory = memory_of(std::process::id()).expect("own status");
        assert!(memory.rss_kib > 0);
        assert!(memory.peak_kib >= memory.rss_kib);
    }
}
