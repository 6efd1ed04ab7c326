//! A real browser for the web UI's tests: Debian's `chromium`, headless, driven over
//! WebDriver by its `chromium-driver` (`chromedriver`), one driver process per test on a free
//! loopback port. `scripts/test` installs both when missing; `GITWEAVE_CHROMEDRIVER` and
//! `GITWEAVE_CHROMIUM` name other binaries.
//!
//! Screenshots go to `target/ui-screenshots/<name>.png`.

use crate::helpers::free_port;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use std::time::Duration;

/// A Chrome DevTools Protocol command, through chromedriver's own
/// `POST /session/{id}/goog/cdp/execute` (WebDriver has no media emulation of its own).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(serde_json::json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}

/// A headless chromium and its driver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: std::process::Child,
}

fn driver_binary() -> String {
    std::env::var("GITWEAVE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

fn chromium_binary() -> String {
    std::env::var("GITWEAVE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

impl Browser {
    /// Starts the driver and a browser window of `width`×`height`.
    pub async fn start_sized(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = std::process::Command::new(driver_binary())
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install chromium and chromium-driver (scripts/test does)",
                    driver_binary()
                )
            });
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium_binary(),
                "args": [
                    "--headless=new",
                    // The tests run as root in a container: chromium's sandbox needs a user
                    // namespace it does not get there.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-sync",
                    "--disable-component-update",
                    "--disable-default-apps",
                    "--metrics-recording-only",
                    "--no-proxy-server",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "chromedriver on {url} did not start a browser: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser { client, driver }
    }

    /// A desktop-sized browser (1280 px wide).
    pub async fn start() -> Browser {
        Self::start_sized(1280, 1000).await
    }

    /// Saves a screenshot as `target/ui-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Waits (up to `limit`) until `check` holds for the page's `document.body.innerText`.
    pub async fn wait_for_text(&self, limit: Duration, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let text = self
                .client
                .execute("return document.body.innerText;", vec![])
                .await
                .expect("read the page")
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if check(&text) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page did not show {what} within {limit:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css`, finding it again when the live refresh
    /// replaced it between finding and clicking.
    pub async fn click(&self, css: &str) {
        let mut last = None;
        for _ in 0..20 {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) => match el.click().await {
                    Ok(()) => return,
                    Err(e) => last = Some(e.to_string()),
                },
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("could not click {css}: {last:?}");
    }

    /// Types `text` into the first element matching `css` (found again if replaced).
    pub async fn type_into(&self, css: &str, text: &str) {
        let mut last = None;
        for _ in 0..20 {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) => match el.send_keys(text).await {
                    Ok(()) => return,
                    Err(e) => last = Some(e.to_string()),
                },
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("could not type into {css}: {last:?}");
    }

    /// Runs `script` and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run a script")
    }

    /// Waits (up to `limit`) until `script` returns `true`.
    pub async fn wait_for_js(&self, limit: Duration, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.client.execute(script, vec![]).await.ok();
            if v == Some(serde_json::Value::Bool(true)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page did not show {what} within {limit:?} (the script said {v:?}); it ends with:\n{}",
                self.eval("return document.body.innerText.slice(-3000);")
                    .await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses and releases `key`, as a keyboard does, into whatever has the focus.
    pub async fn press(&self, key: Key) {
        let k = char::from(key);
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.client
            .perform_actions(keys)
            .await
            .expect("press a key");
    }

    /// Presses Tab until the focused element matches `css` (at most `max` times); how many
    /// presses it took.
    pub async fn tab_to(&self, css: &str, max: usize) -> usize {
        let probe = format!(
            "return !!document.activeElement && document.activeElement.matches({});",
            serde_json::Value::String(css.to_owned())
        );
        for n in 1..=max {
            self.press(Key::Tab).await;
            if self.eval(&probe).await == serde_json::Value::Bool(true) {
                return n;
            }
        }
        panic!(
            "{css} is not reached by {max} Tab presses; the focus ends on {}",
            self.eval("return document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : null;")
                .await
        );
    }

    /// The page is no wider than the window (no sideways scrolling); the window's width.
    pub async fn fits_the_width(&self) -> (bool, u64) {
        let v = self
            .eval("return [document.documentElement.scrollWidth <= window.innerWidth, window.innerWidth];")
            .await;
        (
            v[0] == serde_json::Value::Bool(true),
            v[1].as_u64().unwrap_or(0),
        )
    }

    /// Emulates `prefers-color-scheme: dark` (`true`) or the default (`false`) for this tab.
    pub async fn dark_mode(&self, on: bool) {
        let value = if on { "dark" } else { "" };
        self.client
            .issue_cmd(Cdp {
                cmd: "Emulation.setEmulatedMedia",
                params: serde_json::json!({
                    "features": [{ "name": "prefers-color-scheme", "value": value }]
                }),
            })
            .await
            .expect("emulate prefers-color-scheme");
    }

    /// Ends the browser and its driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends the driver's process group.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser the driver started (its child; the browser's own helpers end with
        // it), then the driver. A closed session has already ended the browser.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &self.driver.id().to_string()])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
