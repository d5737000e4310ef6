//! The server's footprint over a soak: resident memory and open files, read from
//! `/proc/PID/status` and `/proc/PID/fd`, and the rule that says whether it stayed flat.

use std::time::Duration;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: usize,
}

/// The number of open file descriptors of `pid` (entries of `/proc/PID/fd`).
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Read both numbers now.
pub fn read(pid: u32, at: Duration) -> Option<Sample> {
    Some(Sample { at, rss: crate::sys::rss_bytes(pid)?, fds: open_files(pid)? })
}

/// How much the last third's mean RSS may exceed the middle third's (see `docs/benchmarks.md`,
/// "soak"): more is "RSS kept growing".
pub const RSS_GROWTH_LIMIT: f64 = 0.10;

/// Open files the idle server may hold after the soak beyond what it held before it.
pub const FD_SLACK: usize = 2;

/// The verdict on a run's samples.
#[derive(Debug, Clone, Copy)]
pub struct Flatness {
    /// Mean RSS of the middle third of the samples, bytes.
    pub middle_rss: f64,
    /// Mean RSS of the last third, bytes.
    pub last_rss: f64,
    /// `last / middle - 1`.
    pub growth: f64,
}

impl Flatness {
    /// None with fewer than 3 samples. The first third is warm-up (allocator arenas, buffers
    /// reaching their working size) and is not judged.
    pub fn of(samples: &[Sample]) -> Option<Flatness> {
        let third = samples.len() / 3;
        if third == 0 {
            return None;
        }
        let mean = |s: &[Sample]| s.iter().map(|x| x.rss as f64).sum::<f64>() / s.len() as f64;
        let middle_rss = mean(&samples[third..2 * third]);
        let last_rss = mean(&samples[2 * third..]);
        Some(Flatness { middle_rss, last_rss, growth: last_rss / middle_rss - 1.0 })
    }

    /// True when RSS did not keep growing.
    pub fn flat(&self) -> bool {
        self.growth <= RSS_GROWTH_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rss: &[u64]) -> Vec<Sample> {
        rss.iter().enumerate().map(|(i, r)| Sample { at: Duration::from_secs(i as u64), rss: *r, fds: 10 }).collect()
    }

    #[test]
    fn warm_up_is_not_judged_and_steady_growth_is_caught() {
        let warm = Flatness::of(&run(&[10, 50, 100, 100, 101, 99, 100, 102, 100])).unwrap();
        assert!(warm.flat(), "{warm:?}");
        let leak = Flatness::of(&run(&[100, 110, 120, 130, 140, 150, 160, 170, 180])).unwrap();
        assert!(!leak.flat(), "{leak:?}");
        assert!(Flatness::of(&run(&[1, 2])).is_none());
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id(), Duration::ZERO).expect("/proc of this process");
        assert!(s.rss > 0 && s.fds >= 3, "{s:?}");
    }
}
