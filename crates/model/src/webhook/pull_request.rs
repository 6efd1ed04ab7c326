//! Pull request payloads (SPEC §9): GitHub and Gitea/Forgejo `pull_request` (actions
//! `opened`, `reopened`, `synchronize`; Gitea spells the last `synchronized`) and GitLab
//! `Merge Request Hook` (`open`, `reopen`, and `update` when `oldrev` says new commits came).
//! Other actions make no run.
//!
//! A fork is a pull request whose head repository is not the base repository: compared on
//! the repository ids where the payload has both (`repo.id`, Gitea's `repo_id`, GitLab's
//! project ids), else on `full_name`; a head repository the payload does not name at all
//! (GitHub sends `null` for a deleted fork) counts as a fork, since nothing shows it is not.

use super::{PayloadError, is_sha, json_error};
use serde::Deserialize;

/// A pull request that makes a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRun {
    /// `refs/pull/<n>/head` (GitLab: `refs/merge-requests/<iid>/head`).
    pub git_ref: String,
    /// The head commit: the run's commit.
    pub head: String,
    /// Its number (GitLab: the iid).
    pub number: u64,
    /// The branch it comes from.
    pub source_branch: String,
    /// The branch it goes into.
    pub target_branch: String,
    /// Whether the head repository differs from the base repository.
    pub fork: bool,
}

/// What a pull request delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequestDecision {
    /// Make a run.
    Run(PullRequestRun),
    /// An action that makes no run (`closed`, `edited`, an `update` without new commits…).
    Ignored {
        /// The action, as the payload spells it.
        action: String,
    },
}

#[derive(Deserialize)]
struct RawRepo {
    id: Option<u64>,
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct RawSide {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: Option<String>,
    repo_id: Option<u64>,
    repo: Option<RawRepo>,
}

impl RawSide {
    fn repo_id(&self) -> Option<u64> {
        self.repo.as_ref().and_then(|r| r.id).or(self.repo_id)
    }
    fn full_name(&self) -> Option<&str> {
        self.repo.as_ref().and_then(|r| r.full_name.as_deref())
    }
}

#[derive(Deserialize)]
struct RawPrBody {
    number: Option<u64>,
    head: Option<RawSide>,
    base: Option<RawSide>,
}

#[derive(Deserialize)]
struct RawPr {
    action: Option<String>,
    number: Option<u64>,
    pull_request: Option<RawPrBody>,
}

fn invalid(why: &str) -> PayloadError {
    PayloadError::Invalid(format!("the pull request payload {why}"))
}

fn branch(name: Option<String>, what: &str) -> Result<String, PayloadError> {
    name.filter(|b| !b.is_empty() && !b.chars().any(char::is_control))
        .ok_or_else(|| invalid(&format!("has no {what} branch")))
}

fn head_sha(sha: Option<String>) -> Result<String, PayloadError> {
    let sha = sha.ok_or_else(|| invalid("has no head commit"))?;
    if !is_sha(&sha) {
        return Err(invalid(&format!(
            "names the head commit {sha:?}, not a sha"
        )));
    }
    Ok(sha)
}

/// Reads a GitHub or Gitea/Forgejo `pull_request` body.
pub fn decide_pull_request(body: &[u8]) -> Result<PullRequestDecision, PayloadError> {
    let raw: RawPr = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let action = raw.action.unwrap_or_default();
    if !matches!(
        action.as_str(),
        "opened" | "reopened" | "synchronize" | "synchronized"
    ) {
        return Ok(PullRequestDecision::Ignored { action });
    }
    let pr = raw
        .pull_request
        .ok_or_else(|| invalid("has no \"pull_request\""))?;
    let number = pr
        .number
        .or(raw.number)
        .ok_or_else(|| invalid("has no number"))?;
    let head = pr.head.ok_or_else(|| invalid("has no head"))?;
    let base = pr.base.ok_or_else(|| invalid("has no base"))?;
    let fork = match (head.repo_id(), base.repo_id()) {
        (Some(h), Some(b)) => h != b,
        _ => match (head.full_name(), base.full_name()) {
            (Some(h), Some(b)) => h != b,
            _ => true,
        },
    };
    Ok(PullRequestDecision::Run(PullRequestRun {
        git_ref: format!("refs/pull/{number}/head"),
        head: head_sha(head.sha)?,
        number,
        source_branch: branch(head.git_ref, "head")?,
        target_branch: branch(base.git_ref, "base")?,
        fork,
    }))
}

#[derive(Deserialize)]
struct RawCommit {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawMrAttrs {
    iid: Option<u64>,
    action: Option<String>,
    source_branch: Option<String>,
    target_branch: Option<String>,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    last_commit: Option<RawCommit>,
    oldrev: Option<String>,
}

#[derive(Deserialize)]
struct RawMr {
    object_attributes: Option<RawMrAttrs>,
}

/// Reads a GitLab `Merge Request Hook` body.
pub fn decide_merge_request(body: &[u8]) -> Result<PullRequestDecision, PayloadError> {
    let raw: RawMr = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let mr = raw
        .object_attributes
        .ok_or_else(|| invalid("has no \"object_attributes\""))?;
    let action = mr.action.clone().unwrap_or_default();
    let new_commits = mr.oldrev.as_deref().is_some_and(|o| !o.is_empty());
    let runs = match action.as_str() {
        "open" | "reopen" => true,
        "update" => new_commits,
        _ => false,
    };
    if !runs {
        let action = if action == "update" {
            "update without new commits".to_owned()
        } else {
            action
        };
        return Ok(PullRequestDecision::Ignored { action });
    }
    let number = mr.iid.ok_or_else(|| invalid("has no iid"))?;
    let fork = match (mr.source_project_id, mr.target_project_id) {
        (Some(s), Some(t)) => s != t,
        _ => true,
    };
    Ok(PullRequestDecision::Run(PullRequestRun {
        git_ref: format!("refs/merge-requests/{number}/head"),
        head: head_sha(mr.last_commit.and_then(|c| c.id))?,
        number,
        source_branch: branch(mr.source_branch, "source")?,
        target_branch: branch(mr.target_branch, "target")?,
        fork,
    }))
}

#[cfg(test)]
mod tests {
    use super::{PullRequestDecision, PullRequestRun, decide_merge_request, decide_pull_request};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_published_payloads_make_the_right_runs() {
        assert_eq!(
            decide_pull_request(&fixture("github-pull_request-opened.json")),
            Ok(PullRequestDecision::Run(PullRequestRun {
                git_ref: "refs/pull/2/head".into(),
                head: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
                number: 2,
                source_branch: "changes".into(),
                target_branch: "master".into(),
                fork: false,
            }))
        );
        let PullRequestDecision::Run(r) =
            decide_pull_request(&fixture("gitea-pull_request-opened.json")).expect("gitea")
        else {
            panic!("opened runs");
        };
        assert_eq!((r.number, r.fork), (1, false));
        assert_eq!(
            (r.source_branch.as_str(), r.target_branch.as_str()),
            ("feature", "master")
        );
        let PullRequestDecision::Run(r) =
            decide_pull_request(&fixture("gitea-pull_request-synchronized.json")).expect("sync")
        else {
            panic!("synchronized runs");
        };
        assert_eq!(r.head, "788ed8d02d3b7fcfcf6386dbcbca696aa1d4dc25");
        assert!(!r.fork, "same repo_id on both sides");
        assert_eq!(
            decide_pull_request(&fixture("gitea-pull_request-closed.json")),
            Ok(PullRequestDecision::Ignored {
                action: "closed".into()
            })
        );
        let PullRequestDecision::Run(r) =
            decide_merge_request(&fixture("gitlab-merge_request-update-captured.json"))
                .expect("gitlab")
        else {
            panic!("update with oldrev runs");
        };
        assert_eq!(r.git_ref, "refs/merge-requests/3/head");
        assert_eq!(r.head, "c136499ec574e1034b24c5d306de9acda3005367");
        assert_eq!(r.target_branch, "main");
        assert!(!r.fork);
        assert!(matches!(
            decide_merge_request(&fixture("gitlab-merge_request-docs.json")),
            Ok(PullRequestDecision::Run(_))
        ));
        for ignored in [
            "gitlab-merge_request-close-captured.json",
            "gitlab-merge_request-edited-captured.json",
        ] {
            assert!(
                matches!(
                    decide_merge_request(&fixture(ignored)),
                    Ok(PullRequestDecision::Ignored { .. })
                ),
                "{ignored}"
            );
        }
    }

    #[test]
    fn forks_are_told_by_the_head_repository() {
        let body = |head: &str| {
            format!(
                r#"{{"action":"opened","number":7,"pull_request":{{"head":{{"ref":"f","sha":"abcd1234","repo":{head}}},"base":{{"ref":"main","sha":"00001111","repo":{{"id":1,"full_name":"o/r"}}}}}}}}"#
            )
        };
        let fork = |head: &str| match decide_pull_request(body(head).as_bytes()) {
            Ok(PullRequestDecision::Run(r)) => r.fork,
            other => panic!("{other:?}"),
        };
        assert!(!fork(r#"{"id":1,"full_name":"o/r"}"#));
        assert!(fork(r#"{"id":2,"full_name":"someone/r"}"#));
        assert!(fork("null"), "a head repository that is gone is a fork");
        let gitlab = br#"{"object_attributes":{"iid":5,"action":"open","source_branch":"f","target_branch":"main","source_project_id":9,"target_project_id":1,"last_commit":{"id":"abcd1234"}}}"#;
        assert!(matches!(
            decide_merge_request(gitlab),
            Ok(PullRequestDecision::Run(PullRequestRun { fork: true, .. }))
        ));
        assert!(decide_pull_request(br#"{"action":"opened","pull_request":{}}"#).is_err());
    }
}
