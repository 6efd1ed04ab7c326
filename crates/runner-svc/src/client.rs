//! The runner's side of the internal protocol, with retries (`backon`) for what the network
//! or a restarting pipeline-svc can make fail.

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_api::runner::{
    ActiveRunsRequest, ActiveRunsResponse, Assignment, AttemptState, ClaimRequest, FinishRequest,
    HandBackRequest, LogAck, RegisterRequest, RegisterResponse, Stored,
};
use gitweave_http::ErrorEnvelope;
use std::time::Duration;
use uuid::Uuid;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Worth retrying: connection refused, timeout, 5xx, 429.
    #[error("pipeline-svc unavailable: {0}")]
    Transient(String),
    /// This runner no longer holds the attempt (409 `stale_attempt`).
    #[error("attempt no longer held: {0}")]
    Stale(String),
    /// Refused for another reason.
    #[error("refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
}

impl ClientError {
    fn is_transient(&self) -> bool {
        matches!(self, ClientError::Transient(_))
    }
}

/// What an upload sends: bytes in hand, sent again on a retry, or a stream, which can be read
/// only once.
pub enum UploadBody {
    /// The whole file or archive.
    Whole(Bytes),
    /// Read as it is sent.
    Stream(reqwest::Body),
}

/// A registered runner's connection to pipeline-svc.
#[derive(Debug, Clone)]
pub struct PipelineClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// How long a call that must get through is retried while pipeline-svc does not answer.
    tolerance: Duration,
}

fn transient(e: reqwest::Error) -> ClientError {
    ClientError::Transient(e.to_string())
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = serde_json::from_str::<ErrorEnvelope>(&text)
        .map(|e| (e.error.code, e.error.message))
        .unwrap_or_else(|_| (String::new(), text));
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(ClientError::Transient(format!("{status}: {message}")));
    }
    if status.as_u16() == 409 && code == error_code::STALE_ATTEMPT {
        return Err(ClientError::Stale(message));
    }
    Err(ClientError::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

/// `s` for a query value: everything but RFC 3986's unreserved characters percent-encoded.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The longest wait between two retries of [`persistent`], jitter included.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// Retries for calls that must get through (log chunks, finish, hand-back): capped backoff,
/// for as long as the caller's deadline allows (`RUNNER_OUTAGE_TOLERANCE`, checked in `when`).
/// backon's jitter adds up to the nominal delay again, so the nominal cap is half of
/// [`RETRY_CAP`] (a 5 s cap here once gave waits of up to 10 s).
fn persistent() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(RETRY_CAP / 2)
        .with_max_times(usize::MAX)
        .with_jitter()
}

/// How long a hand-back is retried.
const HAND_BACK_FOR: Duration = Duration::from_secs(5);

/// How long the stop call may take: past it, the runner abandons its claims by itself.
const STOP_CALL: Duration = Duration::from_secs(2);

impl PipelineClient {
    /// Registers, retrying until pipeline-svc answers (it may start after the runner).
    pub async fn register(
        base: &str,
        registration_token: Option<&str>,
        req: &RegisterRequest,
    ) -> Result<(Self, RegisterResponse), ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(transient)?;
        let base = base.trim_end_matches('/').to_owned();
        let url = format!("{base}/internal/v1/runners/register");
        let call = || async {
            let mut rb = http.post(&url).json(req).timeout(Duration::from_secs(10));
            if let Some(t) = registration_token {
                rb = rb.bearer_auth(t);
            }
            let resp = check(rb.send().await.map_err(transient)?).await?;
            resp.json::<RegisterResponse>().await.map_err(transient)
        };
        let reg = call
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(60),
            )
            .when(ClientError::is_transient)
            .notify(|e, d| tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "registration failed; retrying"))
            .await?;
        let client = Self {
            http,
            base,
            token: reg.token.clone(),
            tolerance: Duration::from_secs(15 * 60),
        };
        Ok((client, reg))
    }

    /// Retries calls that must get through for this long while pipeline-svc does not answer.
    pub fn with_outage_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Whether to retry `e` now, given when the retries started.
    fn retry_until(&self, since: tokio::time::Instant) -> impl Fn(&ClientError) -> bool + '_ {
        move |e| e.is_transient() && since.elapsed() < self.tolerance
    }

    fn url(&self, path: &str) -> String {
        format!("{}/internal/v1{path}", self.base)
    }

    /// Long-polls for a job (`None`: nothing within the wait). `claim_id` names the request;
    /// `repeat` says it is sent again after its answer never arrived, so the attempt it took
    /// (if any) comes back instead of waiting out its lease as lost.
    pub async fn claim(
        &self,
        wait: Duration,
        claim_id: Uuid,
        repeat: bool,
    ) -> Result<Option<Assignment>, ClientError> {
        let resp = self
            .http
            .post(self.url("/runners/claim"))
            .bearer_auth(&self.token)
            .json(&ClaimRequest {
                wait_ms: wait.as_millis() as u64,
                claim_id: Some(claim_id),
                repeat,
            })
            .timeout(wait + Duration::from_secs(10))
            .send()
            .await
            .map_err(transient)?;
        let resp = check(resp).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json::<Assignment>().await.map(Some).map_err(transient)
    }

    /// Says this runner takes no more jobs: pipeline-svc ends its long-polls now.
    pub async fn stop(&self) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(self.url("/runners/stop"))
            .bearer_auth(&self.token)
            .timeout(STOP_CALL)
            .send()
            .await
            .map_err(transient)?;
        check(resp).await.map(|_| ())
    }

    /// Renews the lease; says whether a cancel was asked for.
    pub async fn heartbeat(&self, job: Uuid, attempt: i32) -> Result<AttemptState, ClientError> {
        let resp = self
            .http
            .post(self.url(&format!("/jobs/{job}/attempts/{attempt}/heartbeat")))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(transient)?;
        check(resp).await?.json().await.map_err(transient)
    }

    /// Sends a chunk at `offset`; retried until stored (the server ignores a duplicate).
    pub async fn append_log(
        &self,
        job: Uuid,
        attempt: i32,
        offset: i64,
        chunk: Bytes,
    ) -> Result<LogAck, ClientError> {
        let url = self.url(&format!(
            "/jobs/{job}/attempts/{attempt}/logs?offset={offset}"
        ));
        self.append_to(job, &url, chunk).await
    }

    /// The bytes of an input artifact of the attempt (SPEC §11), streamed.
    pub async fn download_input(
        &self,
        job: Uuid,
        attempt: i32,
        sha256: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>, ClientError>
    {
        self.download(&format!("/jobs/{job}/attempts/{attempt}/inputs/{sha256}"))
            .await
    }

    /// The archive of a cache entry the attempt restores, streamed.
    pub async fn download_cache(
        &self,
        job: Uuid,
        attempt: i32,
        sha256: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>, ClientError>
    {
        self.download(&format!("/jobs/{job}/attempts/{attempt}/cache/{sha256}"))
            .await
    }

    async fn download(
        &self,
        path: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>, ClientError>
    {
        use futures::{StreamExt, TryStreamExt};
        let url = self.url(path);
        let call = || async {
            let resp = self
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(transient)?;
            check(resp).await
        };
        // Through an outage of pipeline-svc, as long as a log chunk would be retried.
        let resp = call
            .retry(persistent())
            .when(self.retry_until(tokio::time::Instant::now()))
            .notify(|e, d| tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "download failed; retrying"))
            .await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    /// Sends one artifact file of the attempt to pipeline-svc (see [`Self::upload`]).
    pub async fn upload_artifact(
        &self,
        job: Uuid,
        attempt: i32,
        path: &str,
        body: UploadBody,
    ) -> Result<Stored, ClientError> {
        let url = self.url(&format!(
            "/jobs/{job}/attempts/{attempt}/artifacts?path={}",
            query_escape(path)
        ));
        self.upload(job, attempt, &url, body).await
    }

    /// Streams the attempt's cache archive to pipeline-svc.
    pub async fn upload_cache(
        &self,
        job: Uuid,
        attempt: i32,
        key: &str,
        body: reqwest::Body,
    ) -> Result<Stored, ClientError> {
        let url = self.url(&format!(
            "/jobs/{job}/attempts/{attempt}/cache?key={}",
            query_escape(key)
        ));
        self.upload(job, attempt, &url, UploadBody::Stream(body))
            .await
    }

    /// Bytes in hand are retried through an outage, as a log chunk is. A stream cannot be
    /// sent twice: it waits until pipeline-svc answers a heartbeat of the attempt (retried the
    /// same way), so an outage that began before the upload costs nothing, then goes once.
    async fn upload(
        &self,
        job: Uuid,
        attempt: i32,
        url: &str,
        body: UploadBody,
    ) -> Result<Stored, ClientError> {
        let since = tokio::time::Instant::now();
        match body {
            UploadBody::Whole(bytes) => {
                let call = || self.upload_once(url, reqwest::Body::from(bytes.clone()));
                call.retry(persistent())
                    .when(self.retry_until(since))
                    .notify(|e, d| tracing::warn!(job.id = %job, error = %e, retry_in_ms = d.as_millis() as u64, "upload failed; retrying"))
                    .await
            }
            UploadBody::Stream(body) => {
                let beat = || self.heartbeat(job, attempt);
                beat.retry(persistent())
                    .when(self.retry_until(since))
                    .notify(|e, d| tracing::warn!(job.id = %job, error = %e, retry_in_ms = d.as_millis() as u64, "pipeline-svc does not answer before an upload; retrying"))
                    .await?;
                self.upload_once(url, body).await
            }
        }
    }

    async fn upload_once(&self, url: &str, body: reqwest::Body) -> Result<Stored, ClientError> {
        let resp = self
            .http
            .put(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(transient)?;
        let resp = check(resp).await?;
        resp.json()
            .await
            .map_err(|e| ClientError::Transient(format!("pipeline-svc's answer: {e}")))
    }

    /// Sends a chunk of a service's log at `offset` (SPEC §12); retried as a job's.
    pub async fn append_service_log(
        &self,
        job: Uuid,
        attempt: i32,
        service: &str,
        offset: i64,
        chunk: Bytes,
    ) -> Result<LogAck, ClientError> {
        // A service name is a host-name label: nothing in it needs escaping in a path.
        let url = self.url(&format!(
            "/jobs/{job}/attempts/{attempt}/services/{service}/logs?offset={offset}"
        ));
        self.append_to(job, &url, chunk).await
    }

    async fn append_to(&self, job: Uuid, url: &str, chunk: Bytes) -> Result<LogAck, ClientError> {
        let call = || async {
            let resp = self
                .http
                .put(url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(chunk.clone())
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(transient)?;
            check(resp).await?.json::<LogAck>().await.map_err(transient)
        };
        call.retry(persistent())
            .when(self.retry_until(tokio::time::Instant::now()))
            .notify(|e, d| tracing::warn!(job.id = %job, error = %e, retry_in_ms = d.as_millis() as u64, "log upload failed; retrying"))
            .await
    }

    /// Reports the end of an attempt; retried until recorded.
    pub async fn finish(
        &self,
        job: Uuid,
        attempt: i32,
        req: &FinishRequest,
    ) -> Result<AttemptState, ClientError> {
        let url = self.url(&format!("/jobs/{job}/attempts/{attempt}/finish"));
        let call = || async {
            let resp = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(req)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(transient)?;
            check(resp)
                .await?
                .json::<AttemptState>()
                .await
                .map_err(transient)
        };
        call.retry(persistent())
            .when(self.retry_until(tokio::time::Instant::now()))
            .notify(|e, d| tracing::warn!(job.id = %job, error = %e, retry_in_ms = d.as_millis() as u64, "finish failed; retrying"))
            .await
    }

    /// Gives back an attempt this stopping runner did not finish (its container is stopped,
    /// its log stored up to `log_end`); retried for at most [`HAND_BACK_FOR`]: a runner that
    /// stops must not wait out an outage (the attempt's lease then runs out on pipeline-svc,
    /// which takes it back as lost).
    pub async fn hand_back(
        &self,
        job: Uuid,
        attempt: i32,
        req: &HandBackRequest,
    ) -> Result<(), ClientError> {
        let url = self.url(&format!("/jobs/{job}/attempts/{attempt}/hand-back"));
        let call = || async {
            let resp = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(req)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(transient)?;
            check(resp).await.map(|_| ())
        };
        let since = tokio::time::Instant::now();
        call.retry(persistent())
            .when(|e| e.is_transient() && since.elapsed() < HAND_BACK_FOR)
            .notify(|e, d| tracing::warn!(job.id = %job, error = %e, retry_in_ms = d.as_millis() as u64, "hand-back failed; retrying"))
            .await
    }

    /// Which of `runs` are still active (not ended, and known to pipeline-svc); one try, no
    /// retry: the workspace sweep simply runs again later.
    pub async fn active_runs(&self, runs: &[Uuid]) -> Result<Vec<Uuid>, ClientError> {
        let resp = self
            .http
            .post(self.url("/runners/active-runs"))
            .bearer_auth(&self.token)
            .json(&ActiveRunsRequest {
                run_ids: runs.to_vec(),
            })
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(transient)?;
        let answer: ActiveRunsResponse = check(resp).await?.json().await.map_err(transient)?;
        Ok(answer.active)
    }
}

#[cfg(test)]
mod tests {
    use super::{RETRY_CAP, persistent};
    use backon::BackoffBuilder;
    use std::time::Duration;

    /// docs/DECISIONS.md ("Outages"): the retries of log chunks and finish back off from
    /// 50 ms, doubling, and never wait more than 5 s, jitter included, so the runner catches up
    /// soon after pipeline-svc is back.
    #[test]
    fn outage_retries_start_at_50_ms_double_and_never_wait_more_than_5_s() {
        for _ in 0..50 {
            let delays: Vec<Duration> = persistent().build().take(40).collect();
            assert_eq!(delays.len(), 40, "retried for as long as the caller allows");
            assert!(
                (Duration::from_millis(50)..Duration::from_millis(100)).contains(&delays[0]),
                "{delays:?}"
            );
            assert!(
                delays.iter().all(|d| *d <= RETRY_CAP),
                "capped at 5 s: {delays:?}"
            );
            // Jitter only adds, so the nominal doubling shows as a lower bound.
            for (i, d) in delays.iter().enumerate().take(5) {
                assert!(*d >= Duration::from_millis(50 << i), "{delays:?}");
            }
            assert!(
                delays[20..]
                    .iter()
                    .all(|d| *d >= Duration::from_millis(2_500)),
                "it reaches the cap: {delays:?}"
            );
        }
    }
}
