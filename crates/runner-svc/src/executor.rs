//! Runs one assigned job attempt from start to report.
//!
//! When the assignment carries a checkout, the engine first puts that commit into the run's
//! workspace (after prepare, before execute); what git says goes into the job's log, and a
//! failed checkout fails the job without running it. A clone URL that
//! [`Checkout::verify`] refuses (a local path outside `RUNNER_LOCAL_REPO_ROOT`, say) fails it
//! the same way, with `config_error`, before anything runs.
//!
//! Three things run side by side while the job runs: the engine writing output into an
//! [`OutputBuffer`], the uploader draining it to pipeline-svc in chunks at contiguous offsets,
//! and the heartbeat renewing the lease (and noticing cancel or a lost lease). The report
//! (`finish`) goes out only after every byte is stored, with the log length, so the server can
//! tell a complete log from a gap.
//!
//! The buffer keeps at most `RUNNER_LOG_LIMIT` bytes of the attempt's output (the rest is
//! dropped and the log says so), and spills what the uploader cannot send yet — pipeline-svc is
//! down — to a spool file under `RUNNER_WORKDIR`, so the job never waits for the network; the
//! spool goes when the attempt's log is stored. While the runner stops (SIGTERM), a job gets
//! `RUNNER_SHUTDOWN_GRACE` to end by itself; then its container is stopped and the attempt is
//! handed back to pipeline-svc, which queues the job again.
//!
//! A job with services (SPEC §12) has them started after the checkout and before its script,
//! which runs only once every one is ready; each service's output is its own log, buffered,
//! masked, limited and spooled like the job's and uploaded beside it. The services are removed
//! when the script has ended, and their logs are complete before the job's end is reported. A
//! service not ready in time fails the job with `service_failed`, its last lines at the end of
//! the job's log.
//!
//! The secrets of the assignment (SPEC §10) become the job's environment variables (under
//! their `env` names) and the patterns of a [`Masker`] the buffer runs on every write, the
//! checkout's output and the `$ line` echo included: only masked bytes are counted against the
//! limit, spooled or uploaded, and the reason reported is masked too. A job whose secrets
//! cannot be masked does not run. The values are never logged: `Assignment`, `JobSpec` and
//! `Masker` print none in `Debug`.

use crate::client::{ClientError, PipelineClient};
use bytes::Bytes;
use gitweave_api::runner::{Assignment, FinishRequest, HandBackRequest};
use gitweave_engine::{
    Checkout, Engine, EngineError, JobSpec, Masker, Outcome, OutputBuffer, ServicesUp,
};
use gitweave_http::Metrics;
use gitweave_model::duration::format_duration;
use gitweave_model::status::ErrorClass;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest chunk sent in one request.
const UPLOAD_CHUNK: usize = 1024 * 1024;
/// Chunks smaller than this wait [`LINGER`] for more bytes before they are sent.
const LINGER_BELOW: usize = 256 * 1024;
/// How long a small chunk waits for more.
const LINGER: Duration = Duration::from_millis(5);
/// Output held in memory before the job is made to wait for the uploader.
const BUFFER_CAP: usize = 16 * 1024 * 1024;

/// What a slot needs to run jobs.
#[derive(Clone)]
pub struct Executor {
    /// The engine.
    pub engine: Arc<dyn Engine>,
    /// pipeline-svc.
    pub client: PipelineClient,
    /// How often to heartbeat.
    pub heartbeat: Duration,
    /// Numbers for `/metrics`.
    pub metrics: Metrics,
    /// Container removals still under way (waited for at shutdown).
    pub cleanup: tokio_util::task::TaskTracker,
    /// `RUNNER_LOG_LIMIT`: bytes of log kept per attempt.
    pub log_limit: u64,
    /// Where attempts spool output pipeline-svc has not taken yet.
    pub spool_dir: PathBuf,
    /// `RUNNER_SHUTDOWN_GRACE`: how long a job may run on once the runner stops.
    pub grace: Duration,
    /// `RUNNER_LOCAL_REPO_ROOT`: local clone URLs must lie under it (none: refused).
    pub local_repo_root: Option<std::path::PathBuf>,
    /// Which artifact files this host's workspaces hold (SPEC §11).
    pub held: Arc<crate::artifacts::Held>,
}

struct Report {
    exit_code: Option<i32>,
    class: Option<ErrorClass>,
    reason: Option<String>,
    /// A line appended to the log for failures the job itself did not print.
    note: Option<String>,
}

impl Report {
    fn failed(class: ErrorClass, reason: String) -> Self {
        Report {
            exit_code: None,
            class: Some(class),
            note: Some(format!("gitweave: {reason}\n")),
            reason: Some(reason),
        }
    }
}

/// Where an uploader sends its bytes.
#[derive(Debug, Clone)]
enum LogTarget {
    /// The job's own log.
    Job,
    /// A service's log.
    Service(String),
}

/// The report of a job whose services did not come up.
fn services_report(up: ServicesUp) -> Option<Report> {
    match up {
        ServicesUp::Ready => None,
        ServicesUp::Canceled => Some(Report::failed(ErrorClass::Canceled, "canceled".into())),
        ServicesUp::NotReady {
            service,
            reason,
            last_lines,
        } => {
            let mut note = format!("gitweave: {reason}\n");
            if last_lines.is_empty() {
                note.push_str(&format!("gitweave: service {service} wrote nothing\n"));
            } else {
                note.push_str(&format!(
                    "gitweave: the last lines of service {service}:\n{last_lines}"
                ));
            }
            Some(Report {
                exit_code: None,
                class: Some(ErrorClass::ServiceFailed),
                reason: Some(reason),
                note: Some(note),
            })
        }
    }
}

fn report_of(outcome: Result<Outcome, EngineError>, timeout: Duration) -> Report {
    match outcome {
        Ok(Outcome::Exited { code: 0, .. }) => Report {
            exit_code: Some(0),
            class: None,
            reason: None,
            note: None,
        },
        Ok(Outcome::Exited { code, oom_killed }) => {
            let code = i32::try_from(code).unwrap_or(i32::MAX);
            if oom_killed {
                Report {
                    exit_code: Some(code),
                    ..Report::failed(
                        ErrorClass::OomKilled,
                        "the container ran out of memory (OOM killed)".into(),
                    )
                }
            } else {
                Report {
                    exit_code: Some(code),
                    class: Some(ErrorClass::ExitCode),
                    reason: Some(format!("exit code {code}")),
                    note: None,
                }
            }
        }
        Ok(Outcome::TimedOut) => Report::failed(
            ErrorClass::Timeout,
            format!(
                "the job ran past its timeout of {} and was stopped",
                format_duration(timeout)
            ),
        ),
        Ok(Outcome::Canceled) => Report::failed(ErrorClass::Canceled, "canceled".into()),
        Err(EngineError::ImageNotFound { image, detail }) => Report::failed(
            ErrorClass::ImageNotFound,
            format!("image {image} not found: {detail}"),
        ),
        Err(EngineError::Config(m)) => Report::failed(ErrorClass::ConfigError, m),
        Err(e @ EngineError::Engine(_)) => Report::failed(ErrorClass::RunnerFailure, e.to_string()),
    }
}

/// `None` when the checkout succeeded; otherwise why the job cannot run. git failing is a
/// `config_error` (a clone URL that does not answer, a commit that is not there: retrying
/// will not help until someone fixes it); the log above the note holds git's own words.
fn checkout_report(
    c: &Checkout,
    outcome: Result<Outcome, EngineError>,
    timeout: Duration,
) -> Option<Report> {
    let what = format!("checkout of {} from {}", c.commit, c.shown_url());
    match outcome {
        Ok(Outcome::Exited { code: 0, .. }) => None,
        Ok(Outcome::Exited { code, .. }) => Some(Report::failed(
            ErrorClass::ConfigError,
            format!("{what} failed (exit code {code}); git's output is above"),
        )),
        Ok(Outcome::TimedOut) => Some(Report::failed(
            ErrorClass::Timeout,
            format!(
                "{what} ran past the job's timeout of {} and was stopped",
                format_duration(timeout)
            ),
        )),
        Ok(Outcome::Canceled) => Some(Report::failed(ErrorClass::Canceled, "canceled".into())),
        Err(EngineError::ImageNotFound { image, detail }) => Some(Report::failed(
            ErrorClass::ImageNotFound,
            format!(
                "{what} needs the helper image {image} (RUNNER_HELPER_IMAGE), which is not there: {detail}"
            ),
        )),
        Err(EngineError::Config(m)) => Some(Report::failed(
            ErrorClass::ConfigError,
            format!("{what} failed: {m}"),
        )),
        Err(e @ EngineError::Engine(_)) => Some(Report::failed(
            ErrorClass::RunnerFailure,
            format!("{what} failed: {e}"),
        )),
    }
}

impl Executor {
    /// Runs the attempt to its end and reports it. Errors are logged here, once.
    pub async fn run(&self, a: Assignment, stop: &CancellationToken) {
        let span = tracing::info_span!("job", job.id = %a.job_id, run.id = %a.run_id, attempt = a.attempt, job.name = %a.name);
        let _ = tracing::Instrument::instrument(self.run_inner(a, stop), span).await;
    }

    async fn run_inner(&self, a: Assignment, stop: &CancellationToken) {
        let timeout = Duration::from_secs(a.timeout_secs);
        // The job's secrets are set as variables and masked in everything it prints (and in
        // the reason reported) from the first byte on, before the buffer sees it.
        let (masker, mask_failed) = match Masker::new(a.secrets.iter().map(|s| s.value.expose())) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e)),
        };
        let mut env = a.env.clone();
        for s in &a.secrets {
            env.insert(s.env.clone(), s.value.expose().to_owned());
        }
        let spec = JobSpec {
            job_id: a.job_id.to_string(),
            attempt: a.attempt,
            image: a.image.clone(),
            script: a.script.clone(),
            env,
            workspace: a.workspace.clone(),
            // 0: a pipeline-svc that does not say; share, as with several jobs. The checkout
            // helper never joins the run's namespace, so it does not count.
            shares_run: a.run_jobs != 1,
            resources: a.resources,
            timeout,
            services: a.services.clone(),
        };
        let buffer = Arc::new(
            OutputBuffer::new(BUFFER_CAP)
                .with_limit(self.log_limit)
                .with_spool(
                    self.spool_dir
                        .join(format!("{}-{}.log", a.job_id, a.attempt)),
                )
                .with_masker(masker.clone()),
        );
        let service_logs: Vec<Arc<OutputBuffer>> = a
            .services
            .iter()
            .map(|s| {
                Arc::new(
                    OutputBuffer::new(BUFFER_CAP)
                        .with_limit(self.log_limit)
                        .with_spool(self.spool_dir.join(format!(
                            "{}-{}-svc-{}.log",
                            a.job_id,
                            a.attempt,
                            s.name.as_str()
                        )))
                        .with_masker(masker.clone()),
                )
            })
            .collect();
        let cancel = CancellationToken::new();
        let lost = Arc::new(AtomicBool::new(false));
        // Once the runner stops, the job has its grace to end; then it is stopped and handed
        // back.
        let handing_back = Arc::new(AtomicBool::new(false));
        let grace = tokio::spawn({
            let (stop, cancel, handing_back, grace) = (
                stop.clone(),
                cancel.clone(),
                handing_back.clone(),
                self.grace,
            );
            async move {
                stop.cancelled().await;
                tokio::time::sleep(grace).await;
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "the job did not end within the shutdown grace; stopping it to hand it back"
                );
                handing_back.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
        });
        let uploader = tokio::spawn(upload(
            self.client.clone(),
            a.clone(),
            LogTarget::Job,
            buffer.clone(),
            cancel.clone(),
            lost.clone(),
        ));
        let service_uploaders: Vec<_> = a
            .services
            .iter()
            .zip(&service_logs)
            .map(|(s, log)| {
                tokio::spawn(upload(
                    self.client.clone(),
                    a.clone(),
                    LogTarget::Service(s.name.as_str().to_owned()),
                    log.clone(),
                    cancel.clone(),
                    lost.clone(),
                ))
            })
            .collect();
        let heartbeat = tokio::spawn(heartbeat(
            self.client.clone(),
            a.clone(),
            self.heartbeat,
            cancel.clone(),
            lost.clone(),
        ));

        self.metrics.gauge_add("runner_jobs_running", 1);
        let prepare = match mask_failed {
            // Never run a job whose secrets could not be masked.
            Some(e) => Err(EngineError::Engine(e.to_string())),
            None => self.engine.prepare(&spec).await,
        };
        let (report, prepared) = match prepare {
            Ok(prepared) => {
                let checkout = match &a.checkout {
                    Some(c) => {
                        let c = Checkout {
                            clone_url: c.clone_url.clone(),
                            commit: c.commit.clone(),
                            git_ref: c.git_ref.clone(),
                        };
                        let outcome = match c.verify(self.local_repo_root.as_deref()) {
                            Ok(v) => self.engine.checkout(&spec, &v, &buffer, &cancel).await,
                            Err(e) => Err(e),
                        };
                        checkout_report(&c, outcome, timeout)
                    }
                    None => None,
                };
                let job = crate::artifacts::Job {
                    engine: self.engine.as_ref(),
                    client: &self.client,
                    a: &a,
                    prepared: &prepared,
                    log: &buffer,
                    held: &self.held,
                };
                let started = match checkout {
                    Some(failed) => Err(failed),
                    None => match crate::artifacts::before_script(&job).await {
                        Err(why) => Err(Report::failed(ErrorClass::RunnerFailure, why)),
                        Ok(()) => match self
                            .engine
                            .start_services(&prepared, &service_logs, &cancel)
                            .await
                        {
                            Ok(up) => services_report(up).map_or(Ok(()), Err),
                            Err(e) => Err(report_of(Err(e), timeout)),
                        },
                    },
                };
                let (report, ran) = match started {
                    Err(failed) => (failed, false),
                    Ok(()) => (
                        report_of(
                            self.engine.execute(&prepared, &buffer, &cancel).await,
                            timeout,
                        ),
                        true,
                    ),
                };
                // The services go with the script, before its end is reported, so their logs
                // are whole by then.
                self.engine.stop_services(&prepared).await;
                // Artifacts and cache from the workspace the script left (not after a cancel:
                // nobody waits for those files).
                let collects = ran
                    && report.class != Some(ErrorClass::Canceled)
                    && !lost.load(Ordering::SeqCst)
                    && !handing_back.load(Ordering::SeqCst);
                let report = match collects {
                    false => report,
                    true => {
                        match crate::artifacts::after_script(&job, report.class.is_none()).await {
                            Ok(()) => report,
                            Err(why) if report.class.is_none() => {
                                Report::failed(ErrorClass::RunnerFailure, why)
                            }
                            Err(why) => Report {
                                note: Some(format!(
                                    "{}gitweave: {why}\n",
                                    report.note.clone().unwrap_or_default()
                                )),
                                ..report
                            },
                        }
                    }
                };
                (report, Some(prepared))
            }
            Err(e) => (report_of(Err(e), timeout), None),
        };
        self.metrics.gauge_add("runner_jobs_running", -1);
        grace.abort();
        for log in &service_logs {
            log.close();
        }
        for u in service_uploaders {
            if let Ok(None) = u.await {
                tracing::warn!("a service's log could not be stored whole");
            }
        }
        let report = match &masker {
            Some(m) => Report {
                reason: report.reason.map(|r| m.mask_str(&r)),
                note: report.note.map(|n| m.mask_str(&n)),
                ..report
            },
            None => report,
        };
        let run_ended = if handing_back.load(Ordering::SeqCst) {
            self.hand_back(&a, &buffer, uploader, heartbeat, &lost)
                .await;
            false
        } else {
            self.report(&a, &report, &buffer, uploader, heartbeat, &lost)
                .await
        };
        // Remove the container after the end is reported, off the slot's path: the next job of
        // the run is released by the report, and need not wait for the removal
        // (bench/FINDINGS.md #3). The runner waits for these tasks before it exits.
        let engine = self.engine.clone();
        let workspace = a.workspace.clone();
        let held = self.held.clone();
        self.cleanup.spawn(async move {
            if let Some(prepared) = prepared
                && let Err(e) = engine.collect(&prepared).await
            {
                tracing::warn!(error = %e, "removing the job's container failed");
            }
            if run_ended {
                held.forget(&workspace);
                if let Err(e) = engine.remove_workspace(&workspace).await {
                    tracing::warn!(error = %e, "removing the run's workspace failed");
                }
            }
        });
    }

    /// Sends the rest of the log, then the end of the attempt. Returns whether the run ended.
    async fn report(
        &self,
        a: &Assignment,
        report: &Report,
        buffer: &OutputBuffer,
        uploader: tokio::task::JoinHandle<Option<i64>>,
        heartbeat: tokio::task::JoinHandle<()>,
        lost: &AtomicBool,
    ) -> bool {
        if let Some(note) = &report.note {
            buffer.write_note(note.as_bytes()).await;
        }
        buffer.close();
        let log_end = match uploader.await {
            Ok(Some(end)) => end,
            Ok(None) | Err(_) => {
                heartbeat.abort();
                tracing::warn!("the attempt was lost while uploading its log; not reporting it");
                return false;
            }
        };
        heartbeat.abort();
        if lost.load(Ordering::SeqCst) {
            tracing::warn!("the lease was lost; not reporting the attempt");
            return false;
        }
        let req = FinishRequest {
            exit_code: report.exit_code,
            error_class: report.class,
            reason: report.reason.clone(),
            log_end,
            log_truncated: buffer.truncated(),
        };
        match self.client.finish(a.job_id, a.attempt, &req).await {
            Ok(state) => {
                let status = report.class.map_or("success", ErrorClass::as_str);
                self.metrics
                    .inc("runner_jobs_total", &format!("result=\"{status}\""));
                tracing::info!(result = status, log_bytes = log_end, "job finished");
                state.run_ended
            }
            Err(e) => {
                tracing::error!(error = %e, "reporting the end of the job failed");
                false
            }
        }
    }
}

impl Executor {
    /// Sends the rest of the log of an attempt stopped at the end of the shutdown grace, then
    /// gives it back to pipeline-svc.
    async fn hand_back(
        &self,
        a: &Assignment,
        buffer: &OutputBuffer,
        uploader: tokio::task::JoinHandle<Option<i64>>,
        heartbeat: tokio::task::JoinHandle<()>,
        lost: &AtomicBool,
    ) {
        buffer
            .write_note(b"gitweave: the runner stopped; this attempt was handed back\n")
            .await;
        buffer.close();
        let log_end = uploader.await.ok().flatten();
        heartbeat.abort();
        let Some(log_end) = log_end.filter(|_| !lost.load(Ordering::SeqCst)) else {
            tracing::warn!("the attempt was lost before it could be handed back");
            return;
        };
        match self
            .client
            .hand_back(a.job_id, a.attempt, &HandBackRequest { log_end })
            .await
        {
            Ok(()) => {
                self.metrics
                    .inc("runner_jobs_total", "result=\"handed_back\"");
                tracing::info!(log_bytes = log_end, "attempt handed back");
            }
            Err(e) => {
                tracing::error!(error = %e, "handing the attempt back failed; pipeline-svc takes it back when its lease runs out")
            }
        }
    }
}

/// Drains the buffer to pipeline-svc. Returns the stored log length, or `None` when the
/// attempt was lost (then the job is stopped).
async fn upload(
    client: PipelineClient,
    a: Assignment,
    target: LogTarget,
    buffer: Arc<OutputBuffer>,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) -> Option<i64> {
    let mut offset = 0i64;
    let mut ok = true;
    while let Some(mut chunk) = buffer.take(UPLOAD_CHUNK).await {
        if !ok {
            continue; // keep draining so the job is never blocked on a dead uploader
        }
        // A job writing fast hands over many small pieces: linger a moment to send fewer,
        // larger chunks (one request and one row each). Never for the first bytes, so the
        // first line is readable at once (bench/FINDINGS.md #8).
        if offset > 0 && chunk.len() < LINGER_BELOW {
            tokio::time::sleep(LINGER).await;
            let more = buffer.take_now(UPLOAD_CHUNK - chunk.len());
            if !more.is_empty() {
                let mut joined = bytes::BytesMut::with_capacity(chunk.len() + more.len());
                joined.extend_from_slice(&chunk);
                joined.extend_from_slice(&more);
                chunk = joined.freeze();
            }
        }
        let len = chunk.len() as i64;
        let sent = match &target {
            LogTarget::Job => {
                client
                    .append_log(a.job_id, a.attempt, offset, Bytes::clone(&chunk))
                    .await
            }
            LogTarget::Service(name) => {
                client
                    .append_service_log(a.job_id, a.attempt, name, offset, Bytes::clone(&chunk))
                    .await
            }
        };
        match sent {
            Ok(ack) if ack.next_offset == offset + len => offset += len,
            Ok(ack) => {
                tracing::error!(
                    expected = offset + len,
                    stored = ack.next_offset,
                    "the stored log disagrees with what was sent"
                );
                ok = false;
            }
            Err(ClientError::Stale(m)) => {
                tracing::warn!(reason = %m, "the attempt is no longer ours; stopping the job");
                lost.store(true, Ordering::SeqCst);
                ok = false;
            }
            Err(e) => {
                tracing::error!(error = %e, "log upload failed for good; stopping the job");
                ok = false;
            }
        }
        if !ok {
            cancel.cancel();
        }
    }
    ok.then_some(offset)
}

/// Renews the lease until aborted; cancels the job on a user's cancel or a lost lease.
async fn heartbeat(
    client: PipelineClient,
    a: Assignment,
    every: Duration,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    // While pipeline-svc is down the job runs on; say so once, and again when it answers.
    let mut failing = false;
    loop {
        tick.tick().await;
        let beat = client.heartbeat(a.job_id, a.attempt).await;
        if beat.is_ok() && failing {
            tracing::info!("heartbeats get through again");
            failing = false;
        }
        match beat {
            Ok(s) if s.cancel => {
                tracing::info!("cancel requested");
                cancel.cancel();
            }
            Ok(_) => {}
            Err(ClientError::Stale(m)) => {
                tracing::warn!(reason = %m, "lease lost; stopping the job");
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, "heartbeat failed; the job runs on, retrying");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}
