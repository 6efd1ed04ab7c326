//! Secrets on the runner side (SPEC §10), before pipeline-svc hands any out: the real runner
//! executor and the real Docker engine run a claimed assignment to which the test adds the
//! secrets, and the log pipeline-svc stores must hold `[MASKED]` wherever the job printed a
//! value, its base64, its hex, a line of a multi-line value, a value split across two writes,
//! or a script line holding one (the `$ line` echo), while the variables were set.

use crate::helpers::{image, no_runner, spawn_with};
use gitweave_api::runner::{JobSecret, RegisterRequest};
use gitweave_api::secret::SecretValue;
use gitweave_engine::docker::{DockerEngine, PullPolicy};
use gitweave_model::status::RunStatus;
use runner_svc::client::PipelineClient;
use runner_svc::executor::Executor;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "s3cr3t-Token/value+42";
const KEY: &str =
    "-----BEGIN KEY-----\nfirst-line-of-the-key\nsecond-line-of-the-key\n-----END KEY-----";

fn b64(data: &[u8]) -> String {
    String::from_utf8_lossy(&gitweave_engine::mask::forms::base64(
        data,
        gitweave_engine::mask::forms::STD_ALPHABET,
        true,
    ))
    .into_owned()
}

#[tokio::test]
async fn the_runner_sets_secrets_and_masks_them_in_everything_the_job_prints() {
    let app = spawn_with(no_runner()).await;
    let script = [
        r#"echo "plain=$TOKEN""#,
        r#"printf %s "$TOKEN" | base64"#,
        r#"printf %s "$TOKEN" | od -An -tx1 | tr -d ' \n'; echo"#,
        r#"echo "$NODE_AUTH_TOKEN" | sed -n 3p"#,
        r#"printf 'split=%s' "$(printf %s "$TOKEN" | head -c 7)"; sleep 1; printf '%s\n' "$(printf %s "$TOKEN" | tail -c +8)""#,
        r#"echo "len=${#TOKEN} ${#NODE_AUTH_TOKEN}""#,
        ": literal s3cr3t-Token/value+42",
    ];
    let lines: Vec<String> = script
        .iter()
        .map(|l| serde_json::to_string(l).expect("json"))
        .collect();
    app.repo_with(
        "secrets",
        "secrets",
        &format!(
            "jobs:\n  - name: job\n    image: {}\n    script: [{}]\n",
            image(),
            lines.join(", ")
        ),
    )
    .await;
    let run = app.trigger("secrets", &json!({})).await;

    let (client, reg) = PipelineClient::register(
        &app.pipeline,
        None,
        &RegisterRequest {
            name: app.runner_name.clone(),
            capacity: 1,
            engine: "docker".into(),
            labels: Default::default(),
            os: None,
            arch: None,
            host_id: None,
        },
    )
    .await
    .expect("register");
    let engine = DockerEngine::connect(&app.runner_name, PullPolicy::Never, &app.prefix)
        .await
        .expect("docker");
    let spool = std::env::temp_dir().join(format!("{}spool", app.prefix));
    let executor = Executor {
        engine: Arc::new(engine),
        client: client.clone(),
        heartbeat: Duration::from_millis(reg.heartbeat_interval_ms),
        metrics: gitweave_http::Metrics::new(),
        cleanup: tokio_util::task::TaskTracker::new(),
        log_limit: 1024 * 1024,
        spool_dir: spool.clone(),
        grace: Duration::from_secs(5),
        local_repo_root: None,
        held: Default::default(),
    };
    let mut a = client
        .claim(Duration::from_secs(10), uuid::Uuid::new_v4(), false)
        .await
        .expect("claim")
        .expect("an assignment");
    assert!(a.secrets.is_empty(), "pipeline-svc hands out none yet");
    a.secrets = vec![
        JobSecret {
            name: "TOKEN".into(),
            env: "TOKEN".into(),
            value: SecretValue::new(TOKEN.into()),
        },
        JobSecret {
            name: "NPM_TOKEN".into(),
            env: "NODE_AUTH_TOKEN".into(),
            value: SecretValue::new(KEY.into()),
        },
    ];
    let job = a.job_id;
    executor.run(a, &CancellationToken::new()).await;
    executor.cleanup.close();
    executor.cleanup.wait().await;

    let run = app.wait_run(run.id, Duration::from_secs(60)).await;
    assert_eq!(run.status, RunStatus::Success);
    let log = String::from_utf8_lossy(&app.raw_log(job).await).into_owned();
    for want in [
        "plain=[MASKED]\n",
        "| base64\n[MASKED]\n",
        "; echo\n[MASKED]\n",
        "sed -n 3p\n[MASKED]\n",
        "split=[MASKED]\n",
        &format!("len={} {}\n", TOKEN.len(), KEY.len()),
        "$ : literal [MASKED]\n",
    ] {
        assert!(log.contains(want), "{want:?} is not in the log:\n{log}");
    }
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    let base64 = b64(TOKEN.as_bytes());
    for leak in [
        TOKEN,
        &TOKEN[..12],
        base64.as_str(),
        hex.as_str(),
        "first-line-of-the-key",
        "second-line-of-the-key",
    ] {
        assert!(!log.contains(leak), "{leak:?} leaked into the log:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&spool);
    app.shutdown().await;
}
