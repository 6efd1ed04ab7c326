//! One job of a local run, through the same `Engine` as runner-svc: prepare, (seed the
//! workspace once per run), execute, collect; a failed attempt is retried as its `retry`
//! policy allows, after the same backoff as pipeline-svc's (`gitweave_model::backoff`, its
//! nominal delay).
//!
//! Two steps leave a job's critical path, as a `docker run` loop cannot: a job's first
//! container may be made ahead, while the jobs before it run ([`RunCtx::prepare_ahead`]),
//! and a finished container is removed in the background while the next job starts
//! ([`RunCtx::finish`] waits for all of them before the run's workspace goes).

use super::events::{Printer, Shown};
use gitweave_engine::{Engine, EngineError, JobSpec, Outcome, OutputBuffer, Prepared, ServicesUp};
use gitweave_model::backoff::retry_delay;
use gitweave_model::expand::ExpandedJob;
use gitweave_model::status::ErrorClass;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// What is the same for every job of the run.
pub struct RunCtx {
    /// The engine.
    pub engine: Arc<dyn Engine>,
    /// The tar of the work tree, until the first job has put it into the workspace.
    pub seed: Mutex<Option<Vec<u8>>>,
    /// The run's workspace key (its id).
    pub workspace: String,
    /// More than one job in the run.
    pub shares_run: bool,
    /// Stops every job (Ctrl-C).
    pub cancel: CancellationToken,
    /// Where output goes.
    pub printer: Printer,
    /// The first retry's delay (doubling from there).
    pub retry_base: Duration,
    /// First attempts' containers made ahead, by job id.
    pub ahead: std::sync::Mutex<HashMap<String, JoinHandle<Result<Prepared, EngineError>>>>,
    /// Removals of finished containers, still going.
    pub removals: std::sync::Mutex<JoinSet<()>>,
}

impl RunCtx {
    /// Starts making `j`'s first container now, so that it is there when `j` becomes ready
    /// (a job with services or one that cannot start is left to its turn).
    pub fn prepare_ahead(self: &Arc<Self>, j: &JobRun) {
        if j.refused.is_some() || !j.job.services.is_empty() {
            return;
        }
        let spec = spec(self, j, 1);
        let engine = self.engine.clone();
        let task = tokio::spawn(async move { engine.prepare(&spec).await });
        self.ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(j.id.clone(), task);
    }

    /// Whether `j`'s first container is being made ahead.
    pub fn has_ahead(&self, j: &JobRun) -> bool {
        self.ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&j.id)
    }

    /// Removes `p`'s container in the background.
    fn remove_later(&self, name: String, p: Prepared) {
        let engine = self.engine.clone();
        self.removals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                if let Err(e) = engine.collect(&p).await {
                    eprintln!("gitweave: removing {name}'s container failed: {e}");
                }
            });
    }

    /// Once no job runs any more: removes the containers made ahead for jobs that never ran,
    /// and waits for every removal.
    pub async fn finish(&self) {
        let unused: Vec<_> = self
            .ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (id, task) in unused {
            if let Ok(Ok(p)) = task.await {
                self.remove_later(id, p);
            }
        }
        let mut removals =
            std::mem::take(&mut *self.removals.lock().unwrap_or_else(|e| e.into_inner()));
        while removals.join_next().await.is_some() {}
    }
}

/// What `j`'s attempt `attempt` runs.
fn spec(ctx: &RunCtx, j: &JobRun, attempt: u32) -> JobSpec {
    let mut env = j.env.clone();
    env.insert("GITWEAVE_JOB_ATTEMPT".into(), attempt.to_string());
    JobSpec {
        job_id: j.id.clone(),
        attempt: attempt as i32,
        image: j.job.image.clone(),
        script: j.job.script.clone(),
        env,
        workspace: ctx.workspace.clone(),
        shares_run: ctx.shares_run,
        resources: j.job.resources,
        timeout: j.job.timeout,
        services: j.job.services.clone(),
    }
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// Succeeded.
    pub ok: bool,
    /// Why it failed.
    pub class: Option<ErrorClass>,
    /// Its last exit code.
    pub exit_code: Option<i64>,
    /// Attempts made.
    pub attempts: u32,
    /// From the first start to the end.
    pub duration: Duration,
    /// In words.
    pub reason: Option<String>,
}

/// One attempt's outcome, as runner-svc's executor reports it.
fn classify(
    outcome: Result<Outcome, EngineError>,
) -> (Option<ErrorClass>, Option<i64>, Option<String>) {
    match outcome {
        Ok(Outcome::Exited { code: 0, .. }) => (None, Some(0), None),
        Ok(Outcome::Exited {
            code,
            oom_killed: true,
        }) => (
            Some(ErrorClass::OomKilled),
            Some(code),
            Some("the container ran out of memory (OOM killed)".into()),
        ),
        Ok(Outcome::Exited { code, .. }) => (
            Some(ErrorClass::ExitCode),
            Some(code),
            Some(format!("exit code {code}")),
        ),
        Ok(Outcome::TimedOut) => (
            Some(ErrorClass::Timeout),
            None,
            Some("the job ran past its timeout and was stopped".into()),
        ),
        Ok(Outcome::Canceled) => (Some(ErrorClass::Canceled), None, Some("canceled".into())),
        Err(EngineError::ImageNotFound { image, detail }) => (
            Some(ErrorClass::ImageNotFound),
            None,
            Some(format!("image {image} not found: {detail}")),
        ),
        Err(EngineError::Config(m)) => (Some(ErrorClass::ConfigError), None, Some(m)),
        Err(e @ EngineError::Engine(_)) => {
            (Some(ErrorClass::RunnerFailure), None, Some(e.to_string()))
        }
    }
}

/// What one job needs.
pub struct JobRun {
    /// `pipeline/<job>`.
    pub name: String,
    /// Its id (names its containers).
    pub id: String,
    /// The expanded job.
    pub job: ExpandedJob,
    /// Its environment: the job's, the predefined variables, its secrets.
    pub env: std::collections::BTreeMap<String, String>,
    /// Masks its secrets in its output.
    pub masker: Option<Arc<gitweave_engine::Masker>>,
    /// Why it cannot start at all (a secret not set locally): a `config_error`.
    pub refused: Option<String>,
}

/// Runs `j` to its end, retrying as its policy allows.
pub async fn run(ctx: Arc<RunCtx>, j: JobRun) -> JobEnd {
    let started = Instant::now();
    let mut attempt: u32 = 1;
    loop {
        ctx.printer.started(&j.name, attempt);
        let (class, exit_code, reason) = match &j.refused {
            Some(r) => (Some(ErrorClass::ConfigError), None, Some(r.clone())),
            None => one_attempt(&ctx, &j, attempt).await,
        };
        let again = class.is_some_and(|c| {
            !ctx.cancel.is_cancelled() && j.job.retry.allows(c, exit_code, attempt)
        });
        if let (true, Some(c)) = (again, class) {
            let delay = retry_delay(ctx.retry_base, attempt as i32, 0.5);
            ctx.printer
                .retrying(&j.name, attempt, j.job.retry.max + 1, c, delay);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.cancel.cancelled() => {}
            }
            attempt += 1;
            continue;
        }
        return JobEnd {
            ok: class.is_none(),
            class,
            exit_code,
            attempts: attempt,
            duration: started.elapsed(),
            reason,
        };
    }
}

async fn one_attempt(
    ctx: &RunCtx,
    j: &JobRun,
    attempt: u32,
) -> (Option<ErrorClass>, Option<i64>, Option<String>) {
    let spec = spec(ctx, j, attempt);
    let buffer = Arc::new(OutputBuffer::new(1 << 20).with_masker(j.masker.clone()));
    let shown = tokio::spawn(ctx.printer.clone().show(Shown {
        name: j.name.clone(),
        buffer: buffer.clone(),
    }));
    // A service that does not come up fails the attempt as on the runner: service_failed,
    // with its last lines at the end of the job's output.
    let mut not_ready: Option<(ErrorClass, Option<String>, String)> = None;
    let made_ahead = match attempt {
        1 => ctx
            .ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&j.id),
        _ => None,
    };
    let prepared = match made_ahead {
        Some(task) => task
            .await
            .unwrap_or_else(|e| Err(EngineError::Engine(format!("making the container: {e}")))),
        None => ctx.engine.prepare(&spec).await,
    };
    let (outcome, prepared) = match prepared {
        Ok(p) => {
            let mut seed = ctx.seed.lock().await;
            let seeded = match seed.take() {
                Some(tar) => ctx.engine.seed_workspace(&p, tar).await,
                None => Ok(()),
            };
            drop(seed);
            let outcome = match seeded {
                Ok(()) => {
                    // Service output is not shown; its last lines are, if it fails.
                    let logs: Vec<Arc<OutputBuffer>> = spec
                        .services
                        .iter()
                        .map(|_| Arc::new(OutputBuffer::new(1 << 20).with_masker(j.masker.clone())))
                        .collect();
                    let outcome = match ctx.engine.start_services(&p, &logs, &ctx.cancel).await {
                        Ok(ServicesUp::Ready) => ctx.engine.execute(&p, &buffer, &ctx.cancel).await,
                        Ok(ServicesUp::Canceled) => Ok(Outcome::Canceled),
                        Ok(ServicesUp::NotReady {
                            service,
                            reason,
                            last_lines,
                        }) => {
                            let note = if last_lines.is_empty() {
                                format!("gitweave: service {service} wrote nothing\n")
                            } else {
                                format!(
                                    "gitweave: the last lines of service {service}:\n{last_lines}"
                                )
                            };
                            not_ready = Some((ErrorClass::ServiceFailed, Some(reason), note));
                            Ok(Outcome::Canceled)
                        }
                        Err(e) => Err(e),
                    };
                    ctx.engine.stop_services(&p).await;
                    for l in &logs {
                        l.close();
                    }
                    outcome
                }
                Err(e) => Err(e),
            };
            (outcome, Some(p))
        }
        Err(e) => (Err(e), None),
    };
    let (class, code, reason) = match not_ready.take() {
        Some((class, reason, note)) => {
            if let Some(r) = &reason {
                buffer
                    .write_note(format!("gitweave: {r}\n").as_bytes())
                    .await;
            }
            buffer.write_note(note.as_bytes()).await;
            (Some(class), None, reason)
        }
        None => classify(outcome),
    };
    let service_note_written = class == Some(ErrorClass::ServiceFailed);
    // The failures the job did not print itself end its log, as on the runner.
    if let Some(c) = class
        && c != ErrorClass::ExitCode
        && !service_note_written
        && let Some(r) = &reason
    {
        buffer
            .write_note(format!("gitweave: {r}\n").as_bytes())
            .await;
    }
    buffer.close();
    let _ = shown.await;
    if let Some(p) = prepared {
        ctx.remove_later(j.name.clone(), p);
    }
    (class, code, reason)
}
