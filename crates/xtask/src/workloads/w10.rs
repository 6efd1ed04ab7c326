//! W10: the web UI's log page of W2's 22.9 MB log in a real browser (Debian's headless
//! chromium over WebDriver): the time to its first screen, opened afresh each time, and how
//! much of the log the page holds; then "Jump to end" until the last line is on the page.
//!
//! The first screen is timed in the page itself (Navigation and Paint Timing): from the
//! navigation's start to the later of the first contentful paint (the lines are in the HTML,
//! so that paint shows them) and the load event (the script has started). The WebDriver
//! round trip around `goto` is reported beside it.

use super::{Ctx, ms_since, template};
use crate::report::{Section, Target, fmt_ms};
use crate::stats::summarize;
use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use std::time::{Duration, Instant};

const REPO: &str = "bench-w10";

/// A headless chromium and its driver, for as long as the workload runs.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
}

async fn start_browser() -> anyhow::Result<Browser> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking",
                     "--no-proxy-server", "--window-size=1280,900"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Ok(Browser { client, driver }),
            Err(e) if Instant::now() > deadline => {
                bail!("chromedriver did not start a browser: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One opening of the page: (first screen in the page, goto's wall time, log bytes in the
/// DOM, rows in the DOM).
async fn open_once(b: &Browser, url: &str) -> anyhow::Result<(f64, f64, f64, f64)> {
    // A blank page first, so each opening is a fresh navigation.
    b.client.goto("about:blank").await?;
    let t = Instant::now();
    b.client.goto(url).await?;
    let wall = ms_since(t);
    let v = b
        .client
        .execute(
            "const n = performance.getEntriesByType('navigation')[0];\n\
             const p = performance.getEntriesByName('first-contentful-paint')[0];\n\
             const log = document.getElementById('log');\n\
             return [n ? n.loadEventEnd : null, p ? p.startTime : null,\n\
                     log ? log.textContent.length : null, document.querySelectorAll('#log .l').length,\n\
                     !!document.getElementById('L1')];",
            vec![],
        )
        .await?;
    let num = |i: usize| v.get(i).and_then(serde_json::Value::as_f64);
    let load = num(0).context("no navigation timing")?;
    let paint = num(1).unwrap_or(load);
    if v.get(4) != Some(&serde_json::Value::Bool(true)) {
        bail!("the log page shows no line 1");
    }
    Ok((
        load.max(paint),
        wall,
        num(2).unwrap_or(0.0),
        num(3).unwrap_or(0.0),
    ))
}

/// Clicks "Jump to end" and waits for the log's last page; the wall time.
async fn jump_to_end(b: &Browser) -> anyhow::Result<f64> {
    let t = Instant::now();
    b.client
        .find(Locator::Css("#log-end"))
        .await?
        .click()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = b
            .client
            .execute(
                "const p = document.querySelectorAll('#log .page');\n\
                 const last = p[p.length - 1];\n\
                 return !!last && last.dataset.complete === 'true' && Number(last.dataset.offset) > 0;",
                vec![],
            )
            .await?;
        if done == serde_json::Value::Bool(true) {
            return Ok(ms_since(t));
        }
        if Instant::now() > deadline {
            bail!("the end of the log was not shown within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs W10.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let (_, job) = match ctx.big_log.clone() {
        Some(x) => x,
        None => {
            let lines = if ctx.smoke {
                "seq 1 300000"
            } else {
                "seq 1 3000000"
            };
            ctx.api
                .setup_pipeline(REPO, &template(&ctx.image, &[("seq", lines)]))
                .await?;
            let t = ctx.api.trigger(REPO).await?;
            ctx.api
                .expect_success(&t.run_id, Duration::from_secs(300))
                .await?;
            let job = t.job_ids.first().cloned().unwrap_or_default();
            (t.run_id, job)
        }
    };
    let log_bytes = ctx.api.raw_log(&job).await?.len();
    let url = format!("{}/jobs/{job}", ctx.stack.gateway.url);
    let b = start_browser().await?;
    let n = ctx.iterations(20, 2);
    let mut first = Vec::new();
    let mut wall = Vec::new();
    let mut held = 0.0_f64;
    let mut rows = 0.0_f64;
    let mut errors = Vec::new();
    // One warm-up opening (the CSS and the script get cached, as for anyone who comes back).
    for i in 0..=n {
        match open_once(&b, &url).await {
            Ok(_) if i == 0 => {}
            Ok((f, w, h, r)) => {
                first.push(f);
                wall.push(w);
                held = held.max(h);
                rows = rows.max(r);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let jump = match jump_to_end(&b).await {
        Ok(ms) => Some(ms),
        Err(e) => {
            errors.push(format!("jump to end: {e:#}"));
            None
        }
    };
    let _ = b.client.clone().close().await;
    drop(b.driver);

    let f = summarize(&first);
    let w = summarize(&wall);
    let cell = |s: Option<crate::stats::Summary>| {
        s.map_or_else(
            || "n/a".into(),
            |s| {
                format!(
                    "{} ms [{}–{}]",
                    fmt_ms(s.median),
                    fmt_ms(s.min),
                    fmt_ms(s.max)
                )
            },
        )
    };
    let mut body = format!(
        "The log page of a finished job whose log is {:.1} MB (`seq`), opened {} times in headless \
         chromium at 1280×900 (after one warm-up opening), each from `about:blank`. *First screen*: \
         in the page, navigation start → the later of the first contentful paint and the load event. \
         *goto*: the WebDriver call's wall time. Medians, [min–max].\n\n\
         | first screen | goto | log text in the page | rows in the page |\n|---:|---:|---:|---:|\n\
         | {} | {} | {:.0} KB of {:.0} KB | {:.0} |\n\n\
         Jump to end (click → the last page shown, its line numbers counted by the gateway streaming \
         the raw log once): {}.\n",
        log_bytes as f64 / 1e6,
        first.len(),
        cell(f),
        cell(w),
        held / 1e3,
        log_bytes as f64 / 1e3,
        rows,
        jump.map_or_else(|| "n/a".into(), |ms| format!("{} ms", fmt_ms(ms))),
    );
    if !errors.is_empty() {
        body.push_str("\nFailures:\n\n");
        for e in &errors {
            body.push_str(&format!("- {e}\n"));
        }
    }
    Ok(Section {
        title: "W10 — the web UI's first screen of a 23 MB log".into(),
        body,
        targets: vec![
            Target::at_most(
                "W10",
                "log page of the 23 MB log: first screen, median",
                f.map(|s| s.median),
                1000.0,
                "ms",
            ),
            Target::reference(
                "W10",
                "log text the page holds",
                format!("{:.0} KB of {:.0} KB", held / 1e3, log_bytes as f64 / 1e3),
            ),
        ],
    })
}
