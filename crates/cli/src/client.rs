//! The HTTP client of the public API: base URL, bearer token, and the error envelope turned
//! into a message.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Talks to the gateway's `/api/v1`.
#[derive(Clone)]
pub struct Client {
    /// The HTTP client (TLS roots included), for requests outside `/api/v1` helpers.
    pub http: reqwest::Client,
    /// The gateway's URL, as given.
    pub base: String,
    /// Bearer token, when the gateway wants one.
    pub token: Option<String>,
}

impl Client {
    /// A client of the gateway at `base` (`http://` or `https://`: TLS by rustls, verifying
    /// against the platform's certificate store).
    pub fn new(base: String, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .build()
            .context("setting up the HTTP client (TLS)")?;
        Ok(Client { http, base, token })
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
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach GitWeave at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        bail!("{status}: {message}")
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
