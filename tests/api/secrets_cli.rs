//! `gitweave secret set|list|rm` against the real stack: the value comes from stdin, is never
//! printed, and the secret is what the API then lists.

use crate::helpers::{TestApp, bin, no_runner, spawn_with};
use assert_cmd::assert::Assert;
use std::time::Duration;

const VALUE: &str = "cli-secret-value-5d2a";

async fn gitweave(app: &TestApp, args: &[&str], stdin: &str) -> Assert {
    let mut cmd = assert_cmd::Command::new(bin("gitweave"));
    cmd.env_remove("GITWEAVE_API_TOKEN")
        .env_remove("GITWEAVE_URL")
        .arg("--url")
        .arg(&app.gateway)
        .args(args)
        .write_stdin(stdin.to_owned())
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the CLI ran")
}

fn out(a: &Assert) -> String {
    let o = a.get_output();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn secrets_are_set_from_stdin_listed_and_removed() {
    let app = spawn_with(no_runner()).await;
    app.create_repo("shop").await;

    let a = gitweave(
        &app,
        &["secret", "set", "shop", "DEPLOY_TOKEN"],
        &format!("{VALUE}\n"),
    )
    .await;
    let text = out(&a);
    a.success();
    assert!(
        text.contains("DEPLOY_TOKEN") && !text.contains(VALUE),
        "{text}"
    );
    let a = gitweave(
        &app,
        &["secret", "set", "--protected", "shop", "PROD_KEY"],
        VALUE,
    )
    .await;
    a.success();
    let a = gitweave(&app, &["secret", "set", "--global", "NPM_TOKEN"], VALUE).await;
    a.success();

    let a = gitweave(&app, &["secret", "list", "shop"], "").await;
    let text = out(&a);
    a.success();
    assert_eq!(text, "DEPLOY_TOKEN\nPROD_KEY  protected\n");
    let a = gitweave(&app, &["secret", "list", "--global"], "").await;
    let text = out(&a);
    a.success();
    assert_eq!(text, "NPM_TOKEN\n");

    // The trailing newline of `echo` was not stored: the value is 8..64 KiB as sent.
    let listed = app.get_json("/repos/shop/secrets").await;
    assert!(!listed.to_string().contains(VALUE));

    // Errors: no value, a bad name (the server's message), rm of what is not there.
    let a = gitweave(&app, &["secret", "set", "shop", "EMPTY"], "").await;
    let text = out(&a);
    a.failure();
    assert!(text.contains("stdin"), "{text}");
    let a = gitweave(&app, &["secret", "set", "shop", "bad-name"], VALUE).await;
    let text = out(&a);
    a.failure();
    assert!(text.contains("^[A-Z_][A-Z0-9_]{0,127}$"), "{text}");

    gitweave(&app, &["secret", "rm", "shop", "DEPLOY_TOKEN"], "")
        .await
        .success();
    gitweave(&app, &["secret", "rm", "--global", "NPM_TOKEN"], "")
        .await
        .success();
    let a = gitweave(&app, &["secret", "rm", "shop", "DEPLOY_TOKEN"], "").await;
    let text = out(&a);
    a.failure();
    assert!(text.contains("not found"), "{text}");
    let a = gitweave(&app, &["secret", "list", "shop"], "").await;
    assert_eq!(out(&a), "PROD_KEY  protected\n");
    app.shutdown().await;
}
