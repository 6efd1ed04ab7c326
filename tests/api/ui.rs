//! The web UI over plain HTTP: sign-in and the session cookie, the CSRF rules of every
//! action, escaping, the badge, the log pages and their line arithmetic, and that the UI
//! reads pipeline-svc's API (a 404 there is a 404 page here). The browser tests are in
//! `ui_browser.rs`.

use crate::helpers::{Options, TestApp, image, no_runner, spawn_app, spawn_with};
use gitweave_model::status::RunStatus;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::time::Duration;

/// `application/x-www-form-urlencoded` bodies, as a browser sends a form.
trait FormBody {
    fn form_body<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".to_owned(),
                    b => format!("%{b:02X}"),
                })
                .collect()
        };
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
            .collect::<Vec<_>>()
            .join("&");
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// POSTs `form` to `url` as the browser of `cookie` does.
async fn post_form<K: AsRef<str>, V: AsRef<str>>(
    c: &reqwest::Client,
    url: &str,
    cookie: &str,
    form: &[(K, V)],
) -> reqwest::Response {
    c.post(url)
        .header(COOKIE, cookie)
        .form_body(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// GETs `url` as the browser of `cookie` does.
async fn get_as(c: &reqwest::Client, url: &str, cookie: &str) -> reqwest::Response {
    c.get(url)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A client that follows no redirect, so a test sees each 303.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `gw_session=<id>` from a response's `Set-Cookie`, with the whole header.
fn session_cookie(r: &reqwest::Response) -> Option<(String, String)> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gw_session=") && !v.starts_with("gw_session=;"))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_owned();
            (pair, v.to_owned())
        })
}

/// The value of `<input name="csrf" value="…">` (or the meta tag) in a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .map(|i| i + "name=\"csrf-token\" content=\"".len())
        .or_else(|| {
            html.find("name=\"csrf\" value=\"")
                .map(|i| i + "name=\"csrf\" value=\"".len())
        })
        .expect("a CSRF token in the page");
    html[at..at + 64].to_owned()
}

/// Signs in with `token`; the session cookie and its CSRF token.
async fn sign_in(app: &TestApp, token: &str) -> (String, String) {
    let c = client();
    let form = c
        .get(format!("{}/login", app.gateway))
        .send()
        .await
        .expect("login form");
    assert_eq!(form.status(), StatusCode::OK);
    let (anon, _) = session_cookie(&form).expect("the login form starts a session");
    let csrf = csrf_of(&form.text().await.expect("html"));
    let r = post_form(
        &c,
        &format!("{}/login", app.gateway),
        &anon,
        &[("csrf", csrf.as_str()), ("token", token), ("next", "/")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed in");
    let (cookie, _) = session_cookie(&r).expect("a new session cookie");
    assert_ne!(cookie, anon, "the session id changes at sign-in");
    let page = get_as(&c, &format!("{}/", app.gateway), &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.expect("html"));
    (cookie, csrf)
}

const TOKEN: &str = "ui-test-token-0123456789";

fn with_token() -> Options {
    Options {
        api_token: Some(TOKEN.into()),
        ..no_runner()
    }
}

#[tokio::test]
async fn ui_pages_redirect_to_login_and_the_cookie_is_http_only_strict_and_not_the_token() {
    let app = spawn_with(with_token()).await;
    let c = client();
    for path in [
        "/",
        "/repos/x",
        "/runs/00000000-0000-0000-0000-000000000000",
        "/secrets",
    ] {
        let r = c
            .get(format!("{}{path}", app.gateway))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let to = r.headers()[LOCATION].to_str().expect("location").to_owned();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
    }
    // A wrong token is refused and opens no session.
    let form = c
        .get(format!("{}/login", app.gateway))
        .send()
        .await
        .expect("form");
    let (anon, header) = session_cookie(&form).expect("cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(part), "{header}");
    }
    let csrf = csrf_of(&form.text().await.expect("html"));
    let wrong = post_form(
        &c,
        &format!("{}/login", app.gateway),
        &anon,
        &[("csrf", csrf.as_str()), ("token", "not-the-token")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&wrong).is_none());
    let still_out = get_as(&c, &format!("{}/", app.gateway), &anon).await;
    assert_eq!(still_out.status(), StatusCode::SEE_OTHER);
    // A login form without its session's CSRF token is refused even with the right token.
    let forged = post_form(
        &c,
        &format!("{}/login", app.gateway),
        &anon,
        &[("csrf", "0".repeat(64).as_str()), ("token", TOKEN)],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let (cookie, _) = sign_in(&app, TOKEN).await;
    assert!(!cookie.contains(TOKEN), "the cookie is not the token");
    let r = get_as(&c, &format!("{}/", app.gateway), &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn ui_actions_need_this_sessions_csrf_token() {
    let app = spawn_with(with_token()).await;
    app.repo_with(
        "csrf",
        "t",
        "jobs:\n  - name: a\n    image: x\n    script: [\"true\"]\n",
    )
    .await;
    let run = app.trigger("csrf", &json!({})).await;
    let (cookie, csrf) = sign_in(&app, TOKEN).await;
    let c = client();
    let cancel = format!("{}/runs/{}/cancel", app.gateway, run.id);
    // No cookie: not signed in.
    let r = c
        .post(&cancel)
        .form_body(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // No token, a wrong one, another session's: 403 csrf_failed, and nothing happens.
    let (other_cookie, other_csrf) = sign_in(&app, TOKEN).await;
    assert_ne!(other_csrf, csrf);
    for sent in [None, Some("f".repeat(64)), Some(other_csrf.clone())] {
        let form: Vec<(&str, String)> = sent.into_iter().map(|s| ("csrf", s)).collect();
        let r = post_form(&c, &cancel, &cookie, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.expect("envelope");
        assert_eq!(body["error"]["code"], "csrf_failed");
    }
    assert_eq!(
        app.run(run.id).await.status,
        RunStatus::Queued,
        "not canceled"
    );
    // A form body over the cap is refused.
    let big = "x".repeat(64 * 1024);
    let r = post_form(
        &c,
        &cancel,
        &cookie,
        &[("csrf", csrf.as_str()), ("pad", big.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The right token in the right session works.
    let r = post_form(&c, &cancel, &other_cookie, &[("csrf", other_csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.run(run.id).await.status, RunStatus::Canceled);
    // Signing out ends the session.
    let r = post_form(
        &c,
        &format!("{}/logout", app.gateway),
        &other_cookie,
        &[("csrf", other_csrf.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = get_as(&c, &format!("{}/", app.gateway), &other_cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed out");
    app.shutdown().await;
}

#[tokio::test]
async fn ui_escapes_values_from_the_api_and_answers_its_errors() {
    let app = spawn_with(no_runner()).await;
    app.repo_with(
        "esc",
        "t",
        "jobs:\n  - name: a\n    image: x\n    script: [\"true\"]\n",
    )
    .await;
    let run = app
        .trigger("esc", &json!({"ref": "<script>alert(1)</script>"}))
        .await;
    let c = client();
    // Without a token there is no sign-in: the first page makes a session.
    let r = c
        .get(format!("{}/repos/esc", app.gateway))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(session_cookie(&r).is_some());
    let html = r.text().await.expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    let r = c
        .get(format!("{}/runs/{}", app.gateway, run.id))
        .send()
        .await
        .expect("GET");
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("<svg"), "the graph is drawn on the server");
    // pipeline-svc's 404 and the UI's own 400s.
    let r = c
        .get(format!("{}/runs/{}", app.gateway, uuid::Uuid::now_v7()))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html"),
        "an error page, not an envelope"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains("not found") && html.contains("<code>not_found</code>"),
        "{html}"
    );
    let r = c
        .get(format!("{}/runs/nope", app.gateway))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .get(format!("{}/repos/..x", app.gateway))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The API itself is untouched.
    assert_eq!(app.get("/repos").await.status(), StatusCode::OK);
    app.shutdown().await;
}

async fn get_json(c: &reqwest::Client, url: String) -> Value {
    let r = c.get(&url).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.expect("json")
}

#[tokio::test]
async fn ui_log_pages_cut_at_lines_locate_lines_search_and_download() {
    let app = spawn_app().await;
    // 3000 numbered lines, one in colour, one with markup; ~100 KiB: two pages and more.
    let yaml = format!(
        "jobs:\n  - name: print\n    image: {}\n    script:\n      - i=1; while [ $i -le 3000 ]; do echo \"line $i of the log, padded to be a little longer\"; i=$((i+1)); done\n      - printf '\\033[31mred\\033[0m <b>not bold</b>\\n'\n",
        image()
    );
    app.repo_with("logs", "t", &yaml).await;
    let run = app.trigger("logs", &json!({})).await;
    let run = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let job = run.jobs[0].id;
    let raw = app.raw_log(job).await;
    let c = client();
    let base = format!("{}/jobs/{job}/log", app.gateway);

    let first = get_json(&c, format!("{base}/lines?offset=0")).await;
    let next = first["next_offset"].as_u64().expect("next_offset") as usize;
    assert!(next > 0 && next <= 64 * 1024);
    assert_eq!(raw[next - 1], b'\n', "a page ends after a whole line");
    let lines_in_first = raw[..next].iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(first["next_line"].as_u64(), Some(lines_in_first + 1));
    assert!(first["html"].as_str().expect("html").contains("id=\"L1\""));
    // The next page goes on with the next line number.
    let second = get_json(
        &c,
        format!("{base}/lines?offset={next}&line={}", lines_in_first + 1),
    )
    .await;
    let html = second["html"].as_str().expect("html");
    assert!(html.contains(&format!("id=\"L{}\"", lines_in_first + 1)));
    assert!(html.contains(&format!("line {} of the log", lines_in_first + 1)));

    // Locate: line 2500 starts where the raw log says; the last line; a page before.
    // (Counted in the raw bytes: the runner may write lines of its own before the script's.)
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            raw.iter()
                .enumerate()
                .filter(|(i, b)| **b == b'\n' && i + 1 < raw.len())
                .map(|(i, _)| i + 1),
        )
        .collect();
    let at = get_json(&c, format!("{base}/locate?line=2500")).await;
    let off = at["offset"].as_u64().expect("offset") as usize;
    assert_eq!(off, starts[2499]);
    let tail = get_json(&c, format!("{base}/locate?tail=1")).await;
    let last_line = starts.len() as u64;
    assert_eq!(tail["line"].as_u64(), Some(last_line));
    let end_page = get_json(
        &c,
        format!(
            "{base}/lines?offset={}&line={last_line}",
            tail["offset"].as_u64().unwrap_or(0)
        ),
    )
    .await;
    assert_eq!(end_page["complete"], json!(true));
    let html = end_page["html"].as_str().expect("html");
    assert!(html.contains("<span class=\"c1\">red</span>"), "{html}");
    assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"), "{html}");
    let before = get_json(&c, format!("{base}/locate?before={off}")).await;
    assert!(before["offset"].as_u64().expect("offset") as usize <= off - 64 * 1024);

    // Search over the whole log, by visible text.
    let hits = get_json(&c, format!("{base}/search?q=LINE%20299%20of")).await;
    let lines: Vec<u64> = hits["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["line"].as_u64())
        .collect();
    let line_299 = starts
        .iter()
        .position(|&s| raw[s..].starts_with(b"line 299 of"))
        .expect("line 299") as u64
        + 1;
    assert_eq!(lines, vec![line_299]);
    let hits = get_json(&c, format!("{base}/search?q=red%20%3Cb%3E")).await;
    assert_eq!(
        hits["hits"][0]["line"],
        json!(last_line),
        "escape sequences are not text"
    );
    let r = c
        .get(format!("{base}/search?q="))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Download: the exact bytes, as a file.
    let r = c.get(format!("{base}/raw")).send().await.expect("GET");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), raw);

    // The badge: the last run of the default branch.
    let r = c
        .get(format!("{}/repos/logs/badge.svg?branch=main", app.gateway))
        .send()
        .await
        .expect("badge");
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("max-age=30")
    );
    assert!(r.text().await.expect("svg").contains(">success<"));
    let r = c
        .get(format!("{}/repos/logs/badge.svg?branch=other", app.gateway))
        .send()
        .await
        .expect("badge");
    assert!(r.text().await.expect("svg").contains(">unknown<"));
    app.shutdown().await;
}

#[tokio::test]
async fn ui_runners_page_lists_the_apis_runners_with_labels_load_and_status_in_words() {
    // A short lease, so a runner that stops calling is offline soon.
    let app = spawn_with(Options {
        lease_ms: 1_500,
        ..no_runner()
    })
    .await;
    let c = client();
    let page = |c: reqwest::Client, url: String| async move {
        let r = c.get(&url).send().await.expect("GET /runners");
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.expect("html")
    };
    let url = format!("{}/runners", app.gateway);
    let html = page(c.clone(), url.clone()).await;
    assert!(html.contains("No runner is registered"), "{html}");
    assert!(html.contains("href=\"/runners\""), "in the navigation");

    app.repo_with(
        "fleet",
        "t",
        "jobs:\n  - name: a\n    image: x\n    script: [\"true\"]\n",
    )
    .await;
    let token = crate::hand::token(
        &app,
        json!({"name": "fleet-a", "capacity": 2, "engine": "docker", "labels": {"zone": "eu-1"}, "host_id": "<b>host-1</b>"}),
    )
    .await;
    app.trigger("fleet", &json!({})).await;
    crate::hand::claim_within(&app, &token, 2_000)
        .await
        .expect("the runner claims the job");
    let html = page(c.clone(), url.clone()).await;
    let row_at = html.find("data-runner=\"fleet-a\"").expect("its row");
    let row = &html[row_at
        ..html[row_at..]
            .find("</tr>")
            .map_or(html.len(), |e| row_at + e)];
    assert!(row.contains("data-status=\"online\""), "{row}");
    assert!(
        row.contains(">●</span> online"),
        "an icon and a word: {row}"
    );
    assert!(row.contains("&lt;b&gt;host-1&lt;/b&gt;"), "escaped: {row}");
    assert!(!html.contains("<b>host-1"), "{html}");
    assert!(
        row.contains("zone=eu-1") && row.contains("engine=docker"),
        "{row}"
    );
    assert!(row.contains("1 of 2"), "busy of capacity: {row}");

    // Silent past a lease: the API says offline, and so does the page.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = app.get_json("/runners").await;
        if list["runners"][0]["status"] == "offline" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never offline: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let html = page(c, url).await;
    let row_at = html.find("data-runner=\"fleet-a\"").expect("its row");
    let row = &html[row_at
        ..html[row_at..]
            .find("</tr>")
            .map_or(html.len(), |e| row_at + e)];
    assert!(row.contains(">○</span> offline"), "{row}");
    assert!(html.contains("0 of 1 online"), "{html}");
    app.shutdown().await;
}

/// POSTs `form` to `url` in the session `cookie` without its CSRF token, with a wrong one and
/// with `other_csrf` (another session's): each is a 403 `csrf_failed`.
async fn refused_without_this_sessions_token(
    c: &reqwest::Client,
    url: &str,
    cookie: &str,
    other_csrf: &str,
    form: &[(&str, &str)],
) {
    for sent in [None, Some("f".repeat(64)), Some(other_csrf.to_owned())] {
        let mut fields: Vec<(&str, String)> =
            form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        if let Some(t) = sent.clone() {
            fields.push(("csrf", t));
        }
        let r = post_form(c, url, cookie, &fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url} with {sent:?}");
        let body: Value = r.json().await.expect("envelope");
        assert_eq!(body["error"]["code"], "csrf_failed", "{url}");
    }
}

#[tokio::test]
async fn ui_rerun_approve_and_logout_need_this_sessions_csrf_token_and_a_reason_has_a_cap() {
    let app = spawn_with(with_token()).await;
    app.repo_with(
        "gate",
        "t",
        "jobs:\n  - name: ship\n    image: x\n    when: manual\n    script: [\"true\"]\n",
    )
    .await;
    let run = app.trigger("gate", &json!({})).await;
    let job = run.jobs[0].id;
    assert_eq!(
        run.jobs[0].status,
        gitweave_model::status::JobStatus::Manual
    );
    let (cookie, csrf) = sign_in(&app, TOKEN).await;
    let (_, other_csrf) = sign_in(&app, TOKEN).await;
    let c = client();

    // Approve: refused without this session's token, and the job still waits.
    let approve = format!("{}/jobs/{job}/approve", app.gateway);
    refused_without_this_sessions_token(&c, &approve, &cookie, &other_csrf, &[("reason", "ok")])
        .await;
    assert_eq!(
        app.run(run.id).await.jobs[0].status,
        gitweave_model::status::JobStatus::Manual,
        "not approved"
    );
    // A reason over the cap (1000 bytes, pipeline-svc's too) is a 422, and nothing happens.
    let long = "r".repeat(1001);
    let r = post_form(
        &c,
        &approve,
        &cookie,
        &[("csrf", csrf.as_str()), ("reason", long.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.expect("html");
    assert!(html.contains("<code>invalid_reason</code>"), "{html}");
    assert_eq!(
        app.run(run.id).await.jobs[0].status,
        gitweave_model::status::JobStatus::Manual,
        "not approved"
    );
    assert!(
        !app.events(run.id)
            .await
            .iter()
            .any(|e| e.event_type == "job.manual_approved")
    );
    // The cap itself is allowed.
    let at_cap = "r".repeat(1000);
    let r = post_form(
        &c,
        &approve,
        &cookie,
        &[("csrf", csrf.as_str()), ("reason", at_cap.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let approved = app
        .events(run.id)
        .await
        .into_iter()
        .find(|e| e.event_type == "job.manual_approved")
        .expect("approved");
    assert_eq!(approved.reason.as_deref(), Some(at_cap.as_str()));

    // Rerun (of the run, canceled through the API): refused, and no new run.
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let rerun = format!("{}/runs/{}/rerun", app.gateway, run.id);
    refused_without_this_sessions_token(&c, &rerun, &cookie, &other_csrf, &[]).await;
    let runs = app.get_json("/repos/gate/pipelines/runs").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "no rerun: {runs}"
    );

    // Logout: refused, and the session is still signed in.
    let logout = format!("{}/logout", app.gateway);
    refused_without_this_sessions_token(&c, &logout, &cookie, &other_csrf, &[]).await;
    let r = get_as(&c, &format!("{}/", app.gateway), &cookie).await;
    assert_eq!(r.status(), StatusCode::OK, "still signed in");

    // With this session's token both work.
    let r = post_form(&c, &rerun, &cookie, &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let runs = app.get_json("/repos/gate/pipelines/runs").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2));
    let r = post_form(&c, &logout, &cookie, &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = get_as(&c, &format!("{}/", app.gateway), &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed out");
    app.shutdown().await;
}

#[tokio::test]
async fn ui_run_page_shows_why_a_queued_job_waits_and_why_a_failed_job_failed() {
    let app = spawn_app().await;
    // Two runs (of two templates): a failed job skips the rest of its run.
    app.repo_with(
        "why-fail",
        "t",
        &format!(
            "jobs:\n  - name: broken\n    image: {}\n    script: [\"echo about to fail\", \"exit 3\"]\n",
            image()
        ),
    )
    .await;
    app.repo_with(
        "why-wait",
        "w",
        &format!(
            "jobs:\n  - name: stranded\n    image: {}\n    runs_on: {{zone: mars}}\n    script: [\"true\"]\n",
            image()
        ),
    )
    .await;
    let failing = app.trigger("why-fail", &json!({})).await;
    let waiting_run = app.trigger("why-wait", &json!({})).await;
    let failed = app.wait_run(failing.id, Duration::from_secs(120)).await;
    let broken = &failed.jobs[0];
    assert_eq!(broken.status, gitweave_model::status::JobStatus::Failed);
    assert_eq!(broken.exit_code, Some(3));
    let class = broken
        .error_class
        .expect("an error class")
        .as_str()
        .replace('_', " ");
    // No runner in zone mars: the job waits, and the API says why.
    let stranded = waiting_run.jobs[0].id;
    let job = app.get_json(&format!("/jobs/{stranded}")).await;
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["waiting"]["reason"], "no_runner", "{job}");
    let message = job["waiting"]["message"]
        .as_str()
        .expect("a message")
        .to_owned();
    assert!(message.contains("zone=mars"), "{message}");

    let c = client();
    let page = |run: uuid::Uuid, job: uuid::Uuid| {
        let c = c.clone();
        let url = format!("{}/runs/{run}", app.gateway);
        async move {
            let r = c.get(&url).send().await.expect("GET");
            assert_eq!(r.status(), StatusCode::OK);
            let html = r.text().await.expect("html");
            let at = html
                .find(&format!("<tr data-job=\"{job}\""))
                .unwrap_or_else(|| panic!("no row of {job}: {html}"));
            let end = html[at..].find("</tr>").map_or(html.len(), |e| at + e);
            html[at..end].to_owned()
        }
    };
    let b = page(failed.id, broken.id).await;
    assert!(b.contains("data-status=\"failed\""), "{b}");
    assert!(b.contains("class=\"problem\""), "{b}");
    assert!(b.contains(&class), "the error class in words: {b}");
    assert!(b.contains("exit code 3"), "{b}");
    let s = page(waiting_run.id, stranded).await;
    assert!(s.contains("data-status=\"queued\""), "{s}");
    assert!(s.contains("waits: no_runner"), "{s}");
    // The message as the API says it, escaped (`maud` escapes `"`, `<`, `>`, `&`).
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(s.contains(&escaped), "{message} in {s}");
    app.shutdown().await;
}
