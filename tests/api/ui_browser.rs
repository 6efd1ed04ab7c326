//! The web UI in a real browser (headless chromium over WebDriver, see `browser.rs`) against
//! the real stack: a line a running job prints appears without a reload; approve with a
//! reason; cancel; rerun; sign-in; escaping; the pages at phone width. Screenshots go to
//! `target/ui-screenshots/`.

use crate::browser::Browser;
use crate::helpers::{Options, TestApp, image, spawn_app, spawn_with};
use fantoccini::Locator;
use gitweave_model::status::{JobStatus, RunStatus};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

const UI_WAIT: Duration = Duration::from_secs(60);

/// Polls the API until `check` holds for run `id`.
async fn wait_until(
    app: &TestApp,
    id: Uuid,
    what: &str,
    check: impl Fn(&gitweave_api::public::Run) -> bool,
) -> gitweave_api::public::Run {
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    loop {
        let run = app.run(id).await;
        if check(&run) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} never got {what}: {run:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ui_browser_a_line_printed_by_a_running_job_appears_without_a_reload() {
    let app = spawn_app().await;
    let yaml = format!(
        "jobs:\n  - name: slow\n    image: {}\n    script:\n      - echo first line\n      - sleep 4\n      - printf '\\033[32mLIVE-LINE-42\\033[0m <script>window.__pwned=1</script>\\n'\n      - sleep 300\n",
        image()
    );
    app.repo_with("live", "t", &yaml).await;
    let run = app.trigger("live", &json!({})).await;
    let job = run.jobs[0].id;
    let b = Browser::start().await;
    // Open the log once the first line is stored, before the second is printed.
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    while !String::from_utf8_lossy(&app.raw_log(job).await).contains("first line") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never printed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.client
        .goto(&format!("{}/jobs/{job}", app.gateway))
        .await
        .expect("open the log");
    b.wait_for_text(UI_WAIT, "the first line", |t| t.contains("first line"))
        .await;
    assert!(
        !b.text("#log").await.contains("LIVE-LINE-42"),
        "the second line is not printed yet when the page opens"
    );
    // A marker that a reload would wipe.
    b.eval("window.__still_here = 'yes'; return 1;").await;
    b.wait_for_text(UI_WAIT, "the line printed later", |t| {
        t.contains("LIVE-LINE-42")
    })
    .await;
    assert_eq!(
        b.eval("return window.__still_here || null;").await,
        json!("yes"),
        "the line came without a reload"
    );
    // The line's markup is text, its colour a class.
    assert_eq!(b.eval("return window.__pwned || null;").await, json!(null));
    assert!(
        b.text("#log")
            .await
            .contains("<script>window.__pwned=1</script>")
    );
    let green = b
        .eval("return document.querySelector('#log .c2') ? document.querySelector('#log .c2').textContent : null;")
        .await;
    assert_eq!(green, json!("LIVE-LINE-42"));
    b.screenshot("log-live").await;

    // Cancel from the run page; the page shows the end without a reload.
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.eval("window.__still_here = 'run'; return 1;").await;
    b.click("form[action$='/cancel'] button").await;
    wait_until(&app, run.id, "canceled", |r| {
        r.status == RunStatus::Canceled
    })
    .await;
    b.wait_for_text(UI_WAIT, "the canceled run", |t| {
        t.contains("canceled") && t.contains("Rerun")
    })
    .await;
    b.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn ui_browser_approve_with_a_reason_then_rerun() {
    let app = spawn_app().await;
    let yaml = format!(
        "jobs:\n  - name: build\n    image: {i}\n    script: [\"echo built\"]\n  - name: test\n    image: {i}\n    needs: [build]\n    script: [\"echo tested\"]\n  - name: lint\n    image: {i}\n    needs: [build]\n    script: [\"echo linted\"]\n  - name: publish\n    image: {i}\n    needs: [test, lint]\n    when: manual\n    script: [\"echo published\"]\n",
        i = image()
    );
    app.repo_with("gate", "release", &yaml).await;
    let run = app.trigger("gate", &json!({})).await;
    let publish_job = run
        .jobs
        .iter()
        .find(|j| j.name == "release/publish")
        .expect("publish");
    assert_eq!(
        publish_job.needs,
        vec!["test", "lint"],
        "the job view names its needs"
    );
    let publish = publish_job.id;
    wait_until(&app, run.id, "blocked", |r| r.status == RunStatus::Blocked).await;
    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.wait_for_text(UI_WAIT, "the manual job", |t| t.contains("manual"))
        .await;
    // The graph: four boxes, three edges of `needs`, publish to the right of test.
    let drawn = b
        .eval("return [document.querySelectorAll('svg.dag a[data-job]').length, document.querySelectorAll('svg.dag .edge').length];")
        .await;
    assert_eq!(
        drawn,
        json!([4, 4]),
        "build→test, build→lint, test→publish, lint→publish"
    );
    b.screenshot("run-blocked").await;
    let reason = format!("#reason-{publish}");
    b.type_into(&reason, "release signed off by QA").await;
    b.click("form.approve button").await;
    let done = wait_until(&app, run.id, "success", |r| r.status == RunStatus::Success).await;
    assert!(done.jobs.iter().all(|j| j.status == JobStatus::Success));
    let approved = app
        .events(run.id)
        .await
        .into_iter()
        .find(|e| e.event_type == "job.manual_approved")
        .expect("an approval event");
    assert_eq!(approved.reason.as_deref(), Some("release signed off by QA"));
    b.wait_for_text(UI_WAIT, "the run's success", |t| t.contains("Rerun"))
        .await;
    b.screenshot("run").await;

    // Rerun: a new run of the same repo and ref, and its page.
    b.click("form[action$='/rerun'] button").await;
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    let new_id = loop {
        let url = b.client.current_url().await.expect("url");
        let id = url
            .path()
            .strip_prefix("/runs/")
            .and_then(|s| s.parse::<Uuid>().ok())
            .filter(|id| *id != run.id);
        if let Some(id) = id {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new run page: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new = app.run(new_id).await;
    assert_eq!(new.repo, "gate");
    assert_eq!(new.trigger.as_str(), "rerun");
    b.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn ui_browser_sign_in_lands_on_the_page_asked_for_and_phone_width_reads() {
    let token = "browser-token-0123456789";
    let app = spawn_with(Options {
        api_token: Some(token.into()),
        ..crate::helpers::no_runner()
    })
    .await;
    app.repo_with(
        "signin",
        "t",
        "jobs:\n  - name: a\n    image: x\n    script: [\"true\"]\n",
    )
    .await;
    let b = Browser::start_sized(390, 844).await;
    b.client
        .goto(&format!("{}/repos/signin", app.gateway))
        .await
        .expect("open");
    let url = b.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/login", "sent to sign in");
    let field = b
        .client
        .find(Locator::Css("#token"))
        .await
        .expect("token field");
    field.send_keys("wrong").await.expect("type");
    b.client
        .find(Locator::Css("form button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    b.wait_for_text(UI_WAIT, "the refusal", |t| {
        t.contains("not this GitWeave's API token")
    })
    .await;
    b.client
        .find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type");
    b.client
        .find(Locator::Css("form button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    b.wait_for_text(UI_WAIT, "the repo page", |t| {
        t.contains("signin") && t.contains("Runs")
    })
    .await;
    assert_eq!(
        b.client.current_url().await.expect("url").path(),
        "/repos/signin"
    );
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "gw_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(!session.value().contains(token));
    // Readable on a phone: nothing wider than the screen but the scrollable tables.
    let overflow = b
        .eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(overflow, json!(true), "no sideways scrolling at 390 px");
    b.screenshot("repo-phone").await;
    b.close().await;
    app.shutdown().await;
}
