//! The HTTP client of the public API: base URL, bearer token, and the error envelope turned
//! into a message.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::error::Error as _;
use std::io::Read;
use std::path::Path;

/// Talks to the gateway's `/api/v1`.
#[derive(Clone)]
pub struct Client {
    /// The HTTP client (TLS roots included), for requests outside `/api/v1` helpers.
    pub http: reqwest::Client,
    /// The gateway's URL, as given.
    pub base: String,
    /// Bearer token, when the gateway wants one.
    pub token: Option<String>,
    /// The `--ca-cert` file whose roots `http` trusts (canonical path), if one was given.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// The largest `--ca-cert` file read: a PEM bundle of a few roots is a few KiB.
pub const CA_CERT_MAX_BYTES: u64 = 1024 * 1024;

/// The root certificates of a PEM file (`--ca-cert`, `GITWEAVE_CA_CERT`): one or more
/// `CERTIFICATE` blocks, at most [`CA_CERT_MAX_BYTES`].
pub fn read_ca_cert(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("--ca-cert: reading {}", path.display()))?;
    let mut pem = Vec::new();
    file.take(CA_CERT_MAX_BYTES + 1)
        .read_to_end(&mut pem)
        .with_context(|| format!("--ca-cert: reading {}", path.display()))?;
    if pem.len() as u64 > CA_CERT_MAX_BYTES {
        bail!(
            "--ca-cert: {} is larger than {} KiB; it should hold PEM certificates only",
            path.display(),
            CA_CERT_MAX_BYTES / 1024
        );
    }
    let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
        format!(
            "--ca-cert: {} is not a PEM certificate file",
            path.display()
        )
    })?;
    if certs.is_empty() {
        bail!(
            "--ca-cert: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

impl Client {
    /// A client of the gateway at `base` (`http://` or `https://`: TLS by rustls, verifying
    /// against the platform's certificate store, plus the roots of `ca_cert` when given).
    pub fn new(
        base: String,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder();
        let mut kept = None;
        if let Some(path) = ca_cert {
            builder = builder.tls_certs_merge(read_ca_cert(path)?);
            kept = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
        }
        let http = builder
            // A gateway that does not answer fails fast (validate then reports includes
            // unchecked) instead of hanging on a dropped SYN.
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("setting up the HTTP client (TLS)")?;
        Ok(Client {
            http,
            base,
            token,
            ca_cert: kept,
        })
    }

    /// A request to `/api/v1{path}`, with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(
            method,
            format!("{}/api/v1{path}", self.base.trim_end_matches('/')),
        );
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends `rb`; a non-2xx answer becomes an error carrying the envelope's message.
    pub async fn send(&self, rb: RequestBuilder) -> anyhow::Result<Response> {
        let resp = rb.send().await.map_err(|e| self.unreachable(e))?;
        self.check(resp).await
    }

    /// `resp` when it is a 2xx, else an error carrying the envelope's message.
    pub async fn check(&self, resp: Response) -> anyhow::Result<Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        bail!("{status}: {message}")
    }

    /// The error of a request that got no answer, with a hint when it was the server's
    /// certificate that failed.
    pub fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let hint = certificate_hint(&e);
        anyhow::Error::new(e).context(format!("cannot reach GitWeave at {}{hint}", self.base))
    }

    /// Sends `rb` and reads the answer as `T`.
    pub async fn fetch<T: DeserializeOwned>(&self, rb: RequestBuilder) -> anyhow::Result<T> {
        let resp = self.send(rb).await?;
        resp.json()
            .await
            .context("reading GitWeave's answer (is --url a GitWeave gateway?)")
    }

    /// `GET path` as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.fetch(self.request(Method::GET, path)).await
    }

    /// `method path` with the JSON `body`, answered as `T`.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.fetch(self.request(method, path).json(body)).await
    }

    /// `GET path` as text.
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self
            .send(self.request(Method::GET, path))
            .await?
            .text()
            .await?)
    }
}

/// `" (…)"` naming `--ca-cert` when `e` is a failed verification of the server's certificate,
/// else empty.
fn certificate_hint(e: &reqwest::Error) -> &'static str {
    let mut source: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = source {
        if s.to_string().contains("certificate") {
            return " (the server's TLS certificate was not accepted: for a private CA, pass --ca-cert FILE or set GITWEAVE_CA_CERT)";
        }
        source = s.source();
    }
    ""
}
