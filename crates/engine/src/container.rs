//! Settings every container GitWeave makes shares (job containers, run sandboxes, the checkout
//! helper): what is taken away from them, their limits, no daemon-side log, and how a Docker
//! error's status is read. A leaf: [`crate::docker`], [`crate::sandbox`] and
//! [`crate::checkout`] use it, it uses none of them.

use bollard::errors::Error as DockerError;
use bollard::models::{HostConfig, HostConfigLogConfig};
use gitweave_model::resources::Resources;

/// Capabilities taken from job containers on top of what Docker already withholds. Docker's
/// default set keeps CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETUID, SETGID, KILL and
/// NET_BIND_SERVICE, which package managers, builds and test servers (a service on port 80)
/// need; these go, since builds do not: raw sockets (spoofing, sniffing the run's network),
/// device nodes, `chroot`, setting file capabilities, changing the capability sets, writing
/// the kernel audit log.
pub const DROPPED_CAPS: [&str; 6] = [
    "NET_RAW",
    "MKNOD",
    "SYS_CHROOT",
    "SETFCAP",
    "SETPCAP",
    "AUDIT_WRITE",
];

/// What no GitWeave container gets, whatever it runs: not privileged, no new privileges
/// through setuid binaries or file capabilities (`no-new-privileges`), [`DROPPED_CAPS`]
/// dropped, a private IPC namespace. The PID, user and network namespaces are never the
/// host's either: nothing here asks for them (network modes are set by the callers, and are
/// only ever `none`, a run's sandbox or network, or, for the checkout helper, the default
/// bridge).
///
/// It only ever takes away: a caller that already dropped more (the checkout helper drops
/// `ALL`) keeps its stricter list.
pub fn harden(host: &mut HostConfig) {
    host.privileged = Some(false);
    let opts = host.security_opt.get_or_insert_with(Vec::new);
    if !opts.iter().any(|o| o.starts_with("no-new-privileges")) {
        opts.push("no-new-privileges:true".into());
    }
    let dropped = host.cap_drop.get_or_insert_with(Vec::new);
    if !dropped.iter().any(|c| c == "ALL") {
        for cap in DROPPED_CAPS {
            if !dropped.iter().any(|c| c == cap) {
                dropped.push((*cap).to_owned());
            }
        }
    }
    host.ipc_mode = Some("private".into());
}

/// A [`harden`]ed host config with a process limit of `pids` and `resources`' memory and
/// CPUs. Memory is a hard limit: swap is capped at the same size, so a job past it is OOM
/// killed rather than slowed down.
pub fn limited(pids: i64, resources: Resources) -> HostConfig {
    let memory = resources
        .memory
        .map(|m| i64::try_from(m.bytes()).unwrap_or(i64::MAX));
    let mut host = HostConfig {
        pids_limit: Some(pids),
        memory,
        memory_swap: memory,
        nano_cpus: resources
            .cpus
            .map(|c| i64::try_from(c.nanos()).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    harden(&mut host);
    host
}

/// No daemon-side log for job containers: the runner reads their output through the attach
/// stream and stores it itself. dockerd's default json-file driver would turn every line into
/// a JSON record on disk first, which measured ~5× the job's own time on 22.9 MB of output
/// (bench/FINDINGS.md #1).
pub(crate) fn no_daemon_log() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("none".into()),
        config: None,
    }
}

/// The HTTP status of a Docker API error, if the daemon answered one.
pub(crate) fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
