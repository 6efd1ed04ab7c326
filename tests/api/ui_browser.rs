//! The web UI in a real browser (headless chromium over WebDriver, see `browser.rs`) against
//! the real stack: a line a running job prints, a job approved and a run triggered through the
//! API appear without a reload; approve with a reason; cancel; rerun; sign-in and the CSRF
//! rule; escaping; the pages at phone width, by keyboard and in dark mode; a long log loaded
//! page by page as it is scrolled (never whole), opened at a `#L` line and searched.
//! Screenshots go to `target/ui-screenshots/`.

use crate::browser::Browser;
use crate::helpers::{Options, TestApp, image, spawn_app, spawn_with};
use fantoccini::Locator;
use fantoccini::key::Key;
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

/// The marker a reload would wipe, set in the page.
async fn mark(b: &Browser, value: &str) {
    b.eval(&format!(
        "window.__still_here = {}; return 1;",
        json!(value)
    ))
    .await;
}

/// The marker [`mark`] set, if the page is still the same document.
async fn marker(b: &Browser) -> serde_json::Value {
    b.eval("return window.__still_here || null;").await
}

#[tokio::test]
async fn ui_browser_a_line_printed_by_a_running_job_appears_without_a_reload() {
    let app = spawn_app().await;
    // A line wider than a phone (~800 px of monospace), without a space to break it at.
    let long = format!("sha256:{}", "0123456789abcdef".repeat(6));
    let yaml = format!(
        "jobs:\n  - name: slow\n    image: {}\n    script:\n      - echo first line\n      - echo {long}\n      - sleep 4\n      - printf '\\033[32mLIVE-LINE-42\\033[0m <script>window.__pwned=1</script>\\n'\n      - sleep 300\n",
        image()
    );
    app.repo_with("live", "t", &yaml).await;
    let run = app.trigger("live", &json!({})).await;
    let job = run.jobs[0].id;
    let b = Browser::start().await;
    // Open the log once the first lines are stored, before the later one is printed.
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    while !String::from_utf8_lossy(&app.raw_log(job).await).contains(&long) {
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
        "the later line is not printed yet when the page opens"
    );
    mark(&b, "log").await;
    b.wait_for_text(UI_WAIT, "the line printed later", |t| {
        t.contains("LIVE-LINE-42")
    })
    .await;
    assert_eq!(
        marker(&b).await,
        json!("log"),
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
    // Dark mode follows prefers-color-scheme (emulated over CDP).
    let background = "return getComputedStyle(document.documentElement).backgroundColor;";
    assert_eq!(b.eval(background).await, json!("rgb(255, 255, 255)"));
    dark_screen(&b).await;
    b.screenshot("log-dark").await;
    b.dark_mode(false).await;

    // On a phone: the log's long line wraps, nothing scrolls sideways.
    b.client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    let (fits, width) = b.fits_the_width().await;
    assert!(width <= 400, "the window is phone-sized: {width}");
    assert!(fits, "no sideways scrolling on the log page at {width} px");
    b.screenshot("log-phone").await;

    // The run page on a phone, then Cancel reached and pressed by keyboard alone.
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.wait_for_text(UI_WAIT, "the running run", |t| t.contains("Cancel run"))
        .await;
    let (fits, width) = b.fits_the_width().await;
    assert!(fits, "no sideways scrolling on the run page at {width} px");
    b.screenshot("run-phone").await;
    b.tab_to("form[action$='/cancel'] button", 60).await;
    b.press(Key::Enter).await;
    wait_until(&app, run.id, "canceled", |r| {
        r.status == RunStatus::Canceled
    })
    .await;
    // The form's answer is the run's page again (a POST, so a new page: no marker to keep).
    b.wait_for_text(UI_WAIT, "the canceled run", |t| {
        t.contains("canceled") && t.contains("Rerun")
    })
    .await;
    assert_eq!(
        b.client.current_url().await.expect("url").path(),
        format!("/runs/{}", run.id)
    );
    b.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn ui_browser_approve_with_a_reason_then_rerun() {
    let app = spawn_app().await;
    let yaml = format!(
        "jobs:\n  - name: build\n    image: {i}\n    script: [\"echo built\"]\n  - name: test\n    image: {i}\n    needs: [build]\n    script: [\"echo tested\"]\n  - name: lint\n    image: {i}\n    needs: [build]\n    script: [\"echo linted\"]\n  - name: publish\n    image: {i}\n    needs: [test, lint]\n    when: manual\n    script: [\"echo published\"]\n  - name: notify\n    image: {i}\n    needs: [build]\n    when: manual\n    script: [\"echo notified\"]\n",
        i = image()
    );
    app.repo_with("gate", "release", &yaml).await;
    let run = app.trigger("gate", &json!({})).await;
    let job = |name: &str| {
        run.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let publish_job = job("release/publish");
    assert_eq!(
        publish_job.needs,
        vec!["test", "lint"],
        "the job view names its needs"
    );
    let publish = publish_job.id;
    let notify = job("release/notify").id;
    wait_until(&app, run.id, "blocked", |r| r.status == RunStatus::Blocked).await;
    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.wait_for_text(UI_WAIT, "the manual job", |t| t.contains("manual"))
        .await;
    // The graph: five boxes, five edges of `needs`.
    let drawn = b
        .eval("return [document.querySelectorAll('svg.dag a[data-job]').length, document.querySelectorAll('svg.dag .edge').length];")
        .await;
    assert_eq!(
        drawn,
        json!([5, 5]),
        "build→test, build→lint, build→notify, test→publish, lint→publish"
    );
    b.screenshot("run-blocked").await;

    // Approved through the REST API, not the page: the page shows it run and end, unreloaded.
    mark(&b, "run").await;
    let r = app
        .post_json(
            &format!("/jobs/{notify}/approve"),
            &json!({"reason": "approved from a script"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    b.wait_for_js(
        UI_WAIT,
        "notify's success",
        &format!(
            "const tr = document.querySelector('#run-live tr[data-job=\"{notify}\"]'); return !!tr && tr.dataset.status === 'success' && document.getElementById('run-live').dataset.status === 'blocked';"
        ),
    )
    .await;
    assert_eq!(
        marker(&b).await,
        json!("run"),
        "the page changed without a reload"
    );

    // Approve by keyboard alone: Tab to the reason, type it, Tab to the button, Enter.
    let reason = format!("#reason-{publish}");
    b.tab_to(&reason, 80).await;
    b.client
        .active_element()
        .await
        .expect("the reason field")
        .send_keys("release signed off by QA")
        .await
        .expect("type");
    assert_eq!(
        b.tab_to("form.approve button", 1).await,
        1,
        "the Approve button is the next stop"
    );
    b.press(Key::Enter).await;
    let done = wait_until(&app, run.id, "success", |r| r.status == RunStatus::Success).await;
    assert!(done.jobs.iter().all(|j| j.status == JobStatus::Success));
    let approved = app
        .events(run.id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "job.manual_approved")
        .find(|e| e.job_id == Some(publish))
        .expect("an approval event");
    assert_eq!(approved.reason.as_deref(), Some("release signed off by QA"));
    b.wait_for_text(UI_WAIT, "the run's success", |t| t.contains("Rerun"))
        .await;
    b.screenshot("run").await;
    dark_screen(&b).await;
    b.screenshot("run-dark").await;
    b.dark_mode(false).await;

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

    // The repo's runs: a run triggered through the API shows up without a reload. First the
    // rerun is canceled, so the table shows no active run whose events could bring it in.
    let r = app
        .post_json(&format!("/pipelines/runs/{new_id}/cancel"), &json!({}))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    wait_until(&app, new_id, "canceled", |r| {
        r.status == RunStatus::Canceled
    })
    .await;
    b.client
        .goto(&format!("{}/repos/gate", app.gateway))
        .await
        .expect("repo page");
    b.wait_for_js(
        UI_WAIT,
        "the canceled rerun in the table",
        &format!("const tr = document.querySelector('#runs tr[data-run=\"{new_id}\"]'); return !!tr && tr.dataset.status === 'canceled';"),
    )
    .await;
    mark(&b, "repo").await;
    let third = app.trigger("gate", &json!({})).await;
    b.wait_for_js(
        UI_WAIT,
        "the run triggered through the API",
        &format!(
            "return !!document.querySelector('#runs tr[data-run=\"{}\"]');",
            third.id
        ),
    )
    .await;
    assert_eq!(
        marker(&b).await,
        json!("repo"),
        "the table changed without a reload"
    );
    b.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn ui_browser_sign_in_lands_on_the_page_asked_for_phone_width_reads_and_a_tampered_csrf_token_is_refused()
 {
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

    // The CSRF rule: a form whose token was tampered with is refused and changes nothing.
    let run = app.trigger("signin", &json!({})).await;
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.wait_for_text(UI_WAIT, "the queued run", |t| t.contains("Cancel run"))
        .await;
    let tampered = b
        .eval("const f = document.querySelector(\"form[action$='/cancel'] input[name=csrf]\"); const was = f.value; f.value = '0'.repeat(64); return was !== f.value;")
        .await;
    assert_eq!(tampered, json!(true));
    b.click("form[action$='/cancel'] button").await;
    b.wait_for_text(UI_WAIT, "the refusal", |t| t.contains("csrf_failed"))
        .await;
    b.screenshot("csrf-refused").await;
    assert_eq!(
        app.run(run.id).await.status,
        RunStatus::Queued,
        "not canceled"
    );
    // The same form untouched works: the token was all that was wrong.
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("run page");
    b.click("form[action$='/cancel'] button").await;
    wait_until(&app, run.id, "canceled", |r| {
        r.status == RunStatus::Canceled
    })
    .await;
    b.close().await;
    app.shutdown().await;
}

/// A script: line `n` of the log is marked as the one looked for, and in view below the
/// sticky tools (not under them).
fn line_in_view(n: usize) -> String {
    format!(
        "const l = document.getElementById('L{n}'); if (!l || !l.classList.contains('hit')) return false; \
         const r = l.getBoundingClientRect(); const bar = document.querySelector('.log-bar').getBoundingClientRect(); \
         return r.top >= bar.bottom && r.bottom <= window.innerHeight;"
    )
}

#[tokio::test]
async fn ui_browser_a_long_log_loads_as_it_is_scrolled_jumps_to_a_line_and_is_searched() {
    let app = spawn_app().await;
    // 20 000 numbered lines, ~1 MB: more pages of 64 KiB than the page may hold (12).
    let yaml = format!(
        "jobs:\n  - name: long\n    image: {}\n    script:\n      - awk 'BEGIN {{ for (i = 1; i <= 20000; i++) printf \"line %d of the log, padded to be a little longer\\n\", i }}'\n",
        image()
    );
    app.repo_with("long", "t", &yaml).await;
    let run = app.trigger("long", &json!({})).await;
    let run = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let job = run.jobs[0].id;
    let raw = String::from_utf8(app.raw_log(job).await).expect("utf-8");
    assert!(raw.len() > 13 * 64 * 1024, "{} bytes", raw.len());
    // The line number of the line that starts with `text` (the runner may print lines of its
    // own before the script's).
    let number_of = |text: &str| {
        raw.lines()
            .position(|l| l.starts_with(text))
            .unwrap_or_else(|| panic!("no line {text:?}"))
            + 1
    };
    let last = raw.lines().count();
    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/jobs/{job}", app.gateway))
        .await
        .expect("open the log");
    b.wait_for_js(
        UI_WAIT,
        "the first line",
        "return !!document.getElementById('L1');",
    )
    .await;

    // Scrolled to the end: pages come in order, numbered on, and the oldest go.
    let state = "const p = [...document.querySelectorAll('#log .page')]; \
        let ok = true; for (let i = 1; i < p.length; i++) { ok = ok && p[i].dataset.offset === p[i-1].dataset.nextOffset && p[i].dataset.line === p[i-1].dataset.nextLine; } \
        return { pages: p.length, chained: ok, end: document.getElementById('log-bottom').textContent, rows: document.querySelectorAll('#log .l').length };";
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    loop {
        b.eval("window.scrollTo(0, document.documentElement.scrollHeight); return 1;")
            .await;
        let s = b.eval(state).await;
        let pages = s["pages"].as_u64().unwrap_or(0);
        most = most.max(pages);
        assert!(pages <= 12, "the page holds at most 12 pages: {s}");
        assert_eq!(s["chained"], json!(true), "{s}");
        assert!(
            s["rows"].as_u64().unwrap_or(0) < last as u64,
            "the page never holds the whole log: {s}"
        );
        if s["end"] == json!("End of log") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the end: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most, 12, "scrolling filled the window of pages");
    assert_eq!(
        b.eval(&format!(
            "return !!document.getElementById('L{last}') && !document.getElementById('L1');"
        ))
        .await,
        json!(true),
        "the last line is shown and the first was dropped"
    );
    // Back to the top: the dropped pages come back.
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    while b
        .eval("window.scrollTo(0, 0); return !!document.getElementById('L1');")
        .await
        != json!(true)
    {
        let s = b.eval(state).await;
        assert!(s["pages"].as_u64().unwrap_or(0) <= 12, "{s}");
        assert_eq!(s["chained"], json!(true), "{s}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back at the start: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A link to a line far past the first page opens there (a new page: from another one,
    // since a link within the page only changes its hash).
    let far = number_of("line 15000 of");
    b.client
        .goto(&format!("{}/runs/{}", app.gateway, run.id))
        .await
        .expect("another page");
    b.client
        .goto(&format!("{}/jobs/{job}#L{far}", app.gateway))
        .await
        .expect("open at a line");
    let shown = format!(
        "return (() => {{ {} }})() && document.getElementById('L{far}').textContent.includes('line 15000 of') && !document.getElementById('L1');",
        line_in_view(far)
    );
    b.wait_for_js(UI_WAIT, "line 15000, in view", &shown).await;
    b.screenshot("log-line").await;
    // A new #L in the same page jumps again.
    let near = number_of("line 42 of");
    b.eval(&format!("location.hash = '#L{near}'; return 1;"))
        .await;
    b.wait_for_js(UI_WAIT, "line 42, in view", &line_in_view(near))
        .await;

    // Search the whole log, then follow a hit to its line.
    let wanted = number_of("line 17777 of");
    b.type_into("#log-q", "LINE 17777 of").await;
    b.click("#log-search button").await;
    b.wait_for_text(UI_WAIT, "the hit", |t| {
        t.contains("1 line(s) contain") && t.contains(&format!("L{wanted}"))
    })
    .await;
    assert!(
        b.text("#search-results")
            .await
            .contains("line 17777 of the log"),
        "the hit's text"
    );
    b.click(&format!("#search-results a[href='#L{wanted}']"))
        .await;
    b.wait_for_js(UI_WAIT, "the hit's line, in view", &line_in_view(wanted))
        .await;
    b.screenshot("log-search").await;
    b.close().await;
    app.shutdown().await;
}

/// Turns on `prefers-color-scheme: dark` and waits for the page's dark background.
async fn dark_screen(b: &Browser) {
    b.dark_mode(true).await;
    b.wait_for_js(
        UI_WAIT,
        "the dark background",
        "return getComputedStyle(document.documentElement).backgroundColor === 'rgb(13, 17, 23)';",
    )
    .await;
}
