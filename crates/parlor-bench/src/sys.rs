//! What the generator reads from and asks of the OS: file descriptor limits, another process's
//! CPU time and resident memory.

use std::time::Duration;

/// Raise RLIMIT_NOFILE: first try the kernel's ceiling (`fs.nr_open`, allowed for root), else
/// the soft limit up to the hard one. Returns the soft limit in force afterwards. Children
/// inherit it, so a server the generator starts gets the same.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(lim.rlim_max as u64)
            .min(1 << 20);
        if ceiling > lim.rlim_max as u64 {
            let want = libc::rlimit { rlim_cur: ceiling as libc::rlim_t, rlim_max: ceiling as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return ceiling;
            }
        }
        let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return lim.rlim_max as u64;
        }
        lim.rlim_cur as u64
    }
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// Resident memory of a process in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_rss() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(rss_bytes(me).unwrap_or(0) > 0);
        assert!(cpu_time(u32::MAX).is_none());
    }
}
