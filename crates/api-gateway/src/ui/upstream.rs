//! The UI's client of pipeline-svc's public API: the same `/api/v1` routes any client uses,
//! with the API token, and the request id of the page that asked. No other data path.

use crate::state::GatewayState;
use gitweave_api::error_code;
use gitweave_http::REQUEST_ID_HEADER;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::time::Duration;

/// A failed call, as the UI shows it: a status, a stable code and a sentence.
#[derive(Debug, Clone)]
pub struct UiError {
    /// The status to answer.
    pub status: StatusCode,
    /// A stable code (`gitweave_api::error_code`; pipeline-svc's own when it refused).
    pub code: Cow<'static, str>,
    /// What went wrong, for a person.
    pub message: String,
}

impl UiError {
    /// An error of the UI itself.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::UPSTREAM_UNAVAILABLE,
            "pipeline-svc is not reachable; retry shortly",
        )
    }
}

/// A client of pipeline-svc for one page request.
pub struct Api<'a> {
    state: &'a GatewayState,
    request_id: Option<http::HeaderValue>,
}

impl<'a> Api<'a> {
    /// A client for the request with `headers`.
    pub fn new(state: &'a GatewayState, headers: &HeaderMap) -> Self {
        Self {
            state,
            request_id: headers.get(REQUEST_ID_HEADER).cloned(),
        }
    }

    /// `{pipeline}/api/v1/<segments…>?<query>`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<reqwest::Url, UiError> {
        let mut url =
            reqwest::Url::parse(&self.state.upstream).map_err(|_| UiError::unavailable())?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| UiError::unavailable())?;
            path.pop_if_empty().push("api").push("v1");
            for s in segments {
                path.push(s);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn request(&self, method: http::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let mut rb = self.state.client.request(method, url);
        if let Some(token) = &self.state.config.api_token {
            rb = rb.bearer_auth(token);
        }
        if let Some(id) = &self.request_id {
            rb = rb.header(REQUEST_ID_HEADER, id.clone());
        }
        rb
    }

    /// Sends `rb`, waiting at most the upstream timeout for the headers; a non-2xx answer
    /// becomes its envelope's message.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, UiError> {
        let timeout = Duration::from_millis(self.state.config.upstream_timeout_ms);
        let resp = match tokio::time::timeout(timeout, rb.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "ui: pipeline-svc request failed");
                return Err(UiError::unavailable());
            }
            Err(_) => {
                return Err(UiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    error_code::UPSTREAM_TIMEOUT,
                    format!(
                        "pipeline-svc did not answer within {} ms",
                        timeout.as_millis()
                    ),
                ));
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("pipeline-svc answered {status}"));
        let code = body["error"]["code"]
            .as_str()
            .map(|c| Cow::Owned(c.to_owned()))
            .unwrap_or(Cow::Borrowed(error_code::BAD_GATEWAY));
        Err(UiError {
            status,
            code,
            message,
        })
    }

    /// GET a JSON body.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, UiError> {
        let url = self.url(segments, query)?;
        let resp = self.send(self.request(http::Method::GET, url)).await?;
        resp.json().await.map_err(|e| {
            tracing::warn!(error = %e, "ui: pipeline-svc sent a body the UI cannot read");
            UiError::new(
                StatusCode::BAD_GATEWAY,
                error_code::BAD_GATEWAY,
                "pipeline-svc sent an answer the UI cannot read",
            )
        })
    }

    /// POST a JSON body; the answer's JSON.
    pub async fn post(
        &self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, UiError> {
        let url = self.url(segments, &[])?;
        let resp = self
            .send(self.request(http::Method::POST, url).json(body))
            .await?;
        Ok(resp.json().await.unwrap_or_default())
    }

    /// GET a streamed body (a raw log, an event stream), with extra request headers.
    pub async fn stream(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        headers: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<reqwest::Response, UiError> {
        let url = self.url(segments, query)?;
        let mut rb = self.request(http::Method::GET, url);
        for (k, v) in headers {
            rb = rb.header(k.clone(), v.clone());
        }
        self.send(rb).await
    }
}
