//! The README's curl tour ("A walk through every endpoint") runs as written, top to bottom,
//! against the test stack: every request must answer 2xx (`curl --fail-with-body`), and the
//! runs it makes end as the tour says.

use crate::helpers::{Options, spawn_with};
use gitweave_model::status::RunStatus;
use std::time::Duration;
use uuid::Uuid;

/// The first ```sh block after the tour's heading, as written.
fn tour() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let section = readme
        .split_once("## A walk through every endpoint")
        .expect("the README has the tour")
        .1;
    let block = section.split_once("```sh\n").expect("a sh block").1;
    block
        .split_once("\n```")
        .expect("the block ends")
        .0
        .to_owned()
}

#[tokio::test]
async fn the_readme_curl_tour_runs_top_to_bottom() {
    let app = spawn_with(Options::default()).await;
    let script = tour();
    assert!(
        script.contains("GW=http://127.0.0.1:8080/api/v1"),
        "the tour talks to the gateway at its documented address"
    );
    // Only the gateway's address changes; every curl fails on an HTTP error, and so does the
    // script (a `$(…)` that fails too, through pipefail).
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body --max-time 120 \"$@\"; }}\n{}\necho\necho \"TOUR RUN=$RUN RUN2=$RUN2\"\n",
        script.replace("http://127.0.0.1:8080", &app.gateway)
    );
    let dir = std::env::temp_dir().join(format!("gitweave-tour-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("tour dir");
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the tour ends within 5 minutes")
        .expect("run bash");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let ids = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOUR RUN="))
        .expect("the run ids");
    let (run, run2) = ids.split_once(" RUN2=").expect("two ids");
    let run: Uuid = run.parse().expect("run id");
    let run2: Uuid = run2.parse().expect("rerun id");
    assert!(
        stdout.contains("hej from build/compile"),
        "the trigger's input: {stdout}"
    );
    assert!(
        stdout.contains(r#""status":"blocked""#),
        "the gate: {stdout}"
    );
    let ended = app.wait_run(run, Duration::from_secs(60)).await;
    assert_eq!(ended.status, RunStatus::Success, "{ended:#?}");
    let canceled = app.wait_run(run2, Duration::from_secs(60)).await;
    assert_eq!(canceled.status, RunStatus::Canceled, "{canceled:#?}");
    for gone in ["/repos/typo", "/templates/scratch"] {
        assert_eq!(app.get(gone).await.status(), 404, "{gone} was deleted");
    }
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}
