//! What machine the numbers come from, and how busy it was.

use std::time::Duration;

/// A description of the machine, for the report.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// CPU model.
    pub cpu_model: String,
    /// Memory, from /proc/meminfo.
    pub memory: String,
    /// OS name.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Docker server version.
    pub docker: String,
    /// Docker's storage driver (`overlay2`, `fuse-overlayfs`, …): it sets the cost of a
    /// container start.
    pub docker_storage: String,
    /// rustc version.
    pub rustc: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The output of a command, trimmed; empty when it fails.
pub async fn command_output(program: &str, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => String::new(),
    }
}

impl Machine {
    /// Looks at this machine.
    pub async fn describe() -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = read("/proc/meminfo");
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            docker: command_output("docker", &["version", "--format", "{{.Server.Version}}"]).await,
            docker_storage: command_output("docker", &["info", "--format", "{{.Driver}}"]).await,
            rustc: command_output("rustc", &["--version"]).await,
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> (f64, f64, f64) {
    let s = read("/proc/loadavg");
    let mut it = s
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
    (
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    )
}

/// Formats a load average triple.
pub fn fmt_load((a, b, c): (f64, f64, f64)) -> String {
    format!("{a:.2} / {b:.2} / {c:.2}")
}

/// How the wait for a quiet machine went.
#[derive(Debug, Clone)]
pub struct QuietWait {
    /// The 1-minute load asked for.
    pub threshold: f64,
    /// Waited this long.
    pub waited: Duration,
    /// The machine got below the threshold.
    pub quiet: bool,
    /// The lowest 1-minute load seen while waiting.
    pub lowest: f64,
}

/// Polls the 1-minute load average every `every` until it is below `threshold`, at most `max`.
pub async fn wait_until_quiet(threshold: f64, every: Duration, max: Duration) -> QuietWait {
    let start = std::time::Instant::now();
    let mut lowest = f64::INFINITY;
    loop {
        let (one, five, fifteen) = load_average();
        lowest = lowest.min(one);
        if one < threshold {
            return QuietWait {
                threshold,
                waited: start.elapsed(),
                quiet: true,
                lowest,
            };
        }
        if start.elapsed() >= max {
            return QuietWait {
                threshold,
                waited: start.elapsed(),
                quiet: false,
                lowest,
            };
        }
        eprintln!(
            "bench: load average {one:.2} / {five:.2} / {fifteen:.2}; waiting for the 1-minute load to drop below {threshold} ({} s so far)",
            start.elapsed().as_secs()
        );
        tokio::time::sleep(every).await;
    }
}

/// Peak and current resident memory of a process, in KiB (`VmHWM`, `VmRSS`).
pub fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Resets a process's peak RSS (`VmHWM`) to its current RSS (`echo 5 > clear_refs`, Linux ≥ 4.0,
/// needs the right to write there). Returns whether it worked.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Programs of other people's builds: their CPU during a workload is contention, not GitWeave.
const BUILD_TOOLS: &[&str] = &[
    "rustc",
    "cargo",
    "cc",
    "cc1",
    "cc1plus",
    "c++",
    "gcc",
    "clang",
    "ld",
    "ld.lld",
    "rust-lld",
    "collect2",
    "as",
    "build-script-b",
    "ld.gold",
    "mold",
];

/// CPU time (clock ticks) used so far by every build tool running now, by pid; compare two
/// snapshots with [`foreign_cpu_seconds`].
pub fn build_tool_ticks() -> std::collections::HashMap<u32, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        if !BUILD_TOOLS.contains(&comm) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 0, utime 11, stime 12 (proc(5) fields 14 and 15).
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(pid, ticks(11) + ticks(12));
    }
    out
}

/// CPU seconds build tools used between two snapshots (processes that started in between
/// count from zero; those that ended in between are missed, so this is a lower bound).
pub fn foreign_cpu_seconds(
    before: &std::collections::HashMap<u32, u64>,
    after: &std::collections::HashMap<u32, u64>,
) -> f64 {
    // Linux reports these in USER_HZ, which is 100 on every architecture Docker runs on.
    const USER_HZ: f64 = 100.0;
    let ticks: u64 = after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    ticks as f64 / USER_HZ
}

/// Fields of `/proc/PID/stat` after the command name (state is field 0; proc(5) numbers
/// them from 3).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    Some(
        stat[close + 1..]
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// CPU seconds a process has used (user + system, `/proc/PID/stat` utime and stime).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((f.get(11)? + f.get(12)?) as f64 / 100.0)
}

/// CPU seconds used by a process and its children: its own, its waited-for children's
/// (cutime, cstime) and those of its children alive now (a Postgres postmaster and its
/// backends).
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    let own = (f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?) as f64 / 100.0;
    let mut children = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // ppid is field 1 after the name.
            if let Some(cf) = stat_fields(child)
                && cf.get(1).copied() == Some(u64::from(pid))
            {
                children += (cf.get(11).copied().unwrap_or(0) + cf.get(12).copied().unwrap_or(0))
                    as f64
                    / 100.0;
            }
        }
    }
    Some(own + children)
}
