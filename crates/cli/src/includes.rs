//! The templates a pipeline file's `include:` names, fetched from the server
//! (`GET /api/v1/templates/{name}`, its stored YAML parsed by the same model code the server
//! stored it with), for `gitweave validate` (checked when the server answers, else
//! "unchecked") and `gitweave exec` (planned as stages before the file's own jobs).

use crate::client::Client;
use gitweave_api::public::Template as TemplateView;
use gitweave_model::template::{RepoFile, Template, parse_template};
use reqwest::StatusCode;

/// One `include` entry as the server has it.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// Stored: its latest version.
    Stored {
        /// The version the server answered.
        version: i32,
        /// The template, parsed.
        template: Box<Template>,
    },
    /// The server has no template of that name.
    Missing,
}

/// Why the includes could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer at all (connection refused, DNS, TLS, timeout).
    #[error("GitWeave at {url} does not answer: {why}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What reqwest said.
        why: String,
    },
    /// An answer that is not a template (401, 500, not GitWeave, a body that does not parse).
    #[error("looking up template {name:?} at {url}: {why}")]
    Refused {
        /// The template.
        name: String,
        /// The URL tried.
        url: String,
        /// What went wrong.
        why: String,
    },
}

/// Each of `file`'s includes, in order, as the server at `c` has it.
pub async fn fetch(c: &Client, file: &RepoFile) -> Result<Vec<Fetched>, FetchError> {
    let mut out = Vec::with_capacity(file.include.len());
    for inc in &file.include {
        let name = inc.template.as_str();
        let refused = |why: String| FetchError::Refused {
            name: name.to_owned(),
            url: c.base.clone(),
            why,
        };
        let resp = c
            .request(reqwest::Method::GET, &format!("/templates/{name}"))
            .send()
            .await
            .map_err(|e| FetchError::Unreachable {
                url: c.base.clone(),
                why: root_cause(&e),
            })?;
        if resp.status() == StatusCode::NOT_FOUND {
            out.push(Fetched::Missing);
            continue;
        }
        let resp = c.check(resp).await.map_err(|e| refused(format!("{e:#}")))?;
        let view: TemplateView = resp
            .json()
            .await
            .map_err(|e| refused(format!("the answer is not a template: {e}")))?;
        let body = view
            .body
            .ok_or_else(|| refused("the answer has no body".into()))?;
        let template = parse_template(&body)
            .map_err(|e| refused(format!("the stored template does not parse here: {e}")))?;
        out.push(Fetched::Stored {
            version: view.version,
            template: Box::new(template),
        });
    }
    Ok(out)
}

/// The innermost cause of a request error (`Connection refused (os error 111)`, `invalid
/// peer certificate: UnknownIssuer`): the rest only repeats the URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}
