//! Secrets (SPEC §10): the API for repo and global secrets behind the API token, the value
//! rules, no value in any answer or in the database's bytes, the cascade with the repo, and
//! a start with the wrong key refused.

use crate::helpers::{Options, TestApp, envelope, no_runner, spawn_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "secrets-api-token";
const VALUE: &str = "hunter2-deploy-token-7c1f";

fn with_token() -> Options {
    Options {
        api_token: Some(TOKEN.into()),
        ..no_runner()
    }
}

async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .delete(app.api(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("DELETE")
}

/// Every byte of the `secrets` table, as Postgres prints its rows (what a dump holds).
async fn table_bytes(app: &TestApp) -> Vec<u8> {
    let pool = sqlx::PgPool::connect(&app.db_url).await.expect("db");
    let rows: Vec<(String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT s::text, s.nonce, s.ciphertext FROM secrets s")
            .fetch_all(&pool)
            .await
            .expect("read secrets");
    pool.close().await;
    let mut all = Vec::new();
    for (text, nonce, ct) in rows {
        all.extend(text.into_bytes());
        all.extend(nonce);
        all.extend(ct);
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn repo_and_global_secrets_are_set_listed_and_deleted_without_ever_showing_a_value() {
    let app = spawn_with(with_token()).await;
    app.create_repo("web").await;

    // Behind the API token, through the gateway.
    let r = app
        .http
        .put(app.api("/repos/web/secrets/DEPLOY_TOKEN"))
        .json(&json!({"value": VALUE}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let mut answers = String::new();
    let r = app
        .put_json("/repos/web/secrets/DEPLOY_TOKEN", &json!({"value": VALUE}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "create");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["name"], "DEPLOY_TOKEN");
    assert_eq!(body["protected"], false);
    answers += &body.to_string();
    let r = app
        .put_json(
            "/repos/web/secrets/DEPLOY_TOKEN",
            &json!({"value": format!("{VALUE}-v2"), "protected": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "replace");
    answers += &r.text().await.expect("body");
    let r = app
        .put_json("/secrets/DEPLOY_TOKEN", &json!({"value": VALUE}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "a global one of the same name"
    );
    answers += &r.text().await.expect("body");

    let listed = app.get_json("/repos/web/secrets").await;
    answers += &listed.to_string();
    let secrets = listed["secrets"].as_array().expect("list");
    assert_eq!(secrets.len(), 1, "{listed}");
    assert_eq!(secrets[0]["name"], "DEPLOY_TOKEN");
    assert_eq!(secrets[0]["protected"], true);
    assert!(secrets[0]["created_at"].is_string() && secrets[0]["updated_at"].is_string());
    assert!(secrets[0].get("value").is_none());
    let global = app.get_json("/secrets").await;
    answers += &global.to_string();
    assert_eq!(global["secrets"][0]["name"], "DEPLOY_TOKEN");
    assert_eq!(global["secrets"][0]["protected"], false);
    assert!(
        !answers.contains("hunter2"),
        "no answer holds a value: {answers}"
    );

    // The database holds no plaintext.
    let bytes = table_bytes(&app).await;
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, b"hunter2"),
        "plaintext in the secrets table"
    );

    assert_eq!(
        delete(&app, "/repos/web/secrets/DEPLOY_TOKEN")
            .await
            .status(),
        204
    );
    let (status, code, message) =
        envelope(delete(&app, "/repos/web/secrets/DEPLOY_TOKEN").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
    assert_eq!(delete(&app, "/secrets/DEPLOY_TOKEN").await.status(), 204);
    assert_eq!(app.get_json("/secrets").await["secrets"], json!([]));
    let (status, _, message) = envelope(
        app.put_json("/repos/nope/secrets/A_B", &json!({"value": VALUE}))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{message}");
    app.shutdown().await;
}

#[tokio::test]
async fn names_and_values_outside_the_rules_are_422_without_echoing_the_value() {
    let app = spawn_with(with_token()).await;
    app.create_repo("web").await;
    for bad in ["deploy_token", "1TOKEN", "A-B"] {
        let (status, code, message) = envelope(
            app.put_json(
                &format!("/repos/web/secrets/{bad}"),
                &json!({"value": VALUE}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_secret_name"),
            "{bad}: {message}"
        );
        assert!(message.contains("^[A-Z_][A-Z0-9_]{0,127}$"), "{message}");
    }
    let long = "A".repeat(129);
    let (status, code, _) = envelope(
        app.put_json(&format!("/secrets/{long}"), &json!({"value": VALUE}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_secret_name"));

    let ok = |v: String| json!({ "value": v });
    for (value, want) in [
        ("short7!".to_owned(), 422),
        ("exactly8".to_owned(), 201),
        ("x".repeat(64 * 1024), 200),
        ("y".repeat(64 * 1024 + 1), 422),
    ] {
        let r = app
            .put_json("/repos/web/secrets/EDGE", &ok(value.clone()))
            .await;
        assert_eq!(r.status().as_u16(), want, "{} bytes", value.len());
        if want == 422 {
            let (_, code, message) = envelope(r).await;
            assert_eq!(code, "invalid_secret_value");
            assert!(message.contains("8 bytes to 64 KiB"), "{message}");
            assert!(
                !message.contains(&value[..7]),
                "the value is not echoed: {message}"
            );
        }
    }
    // A body of the wrong shape: the message does not quote what was sent.
    let (status, code, message) = envelope(
        app.put_json(
            "/repos/web/secrets/EDGE",
            &json!({"value": 12345678, "x": "hunter2-hunter2"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_secret_value"));
    assert!(
        !message.contains("12345678") && !message.contains("hunter2"),
        "{message}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_a_repo_deletes_its_secrets() {
    let app = spawn_with(with_token()).await;
    app.create_repo("gone").await;
    let r = app
        .put_json("/repos/gone/secrets/DEPLOY_TOKEN", &json!({"value": VALUE}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(delete(&app, "/repos/gone").await.status(), 204);
    assert!(
        table_bytes(&app).await.is_empty(),
        "the repo's secrets went with it"
    );
    app.create_repo("gone").await;
    assert_eq!(
        app.get_json("/repos/gone/secrets").await["secrets"],
        json!([])
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_start_with_another_key_than_the_database_knows_is_refused() {
    let app = spawn_with(no_runner()).await;
    let mut config = pipeline_svc::Config::for_database(app.db_url.clone());
    // 32 bytes of base64, but not the key of the running instance (its key file).
    config.secrets_key = Some(format!("{}A=", "B".repeat(42)));
    let e = pipeline_svc::App::build(config)
        .await
        .err()
        .expect("a wrong key stops the start");
    let text = format!("{e:#}");
    assert!(text.contains("does not match"), "{text}");
    assert!(text.contains("GITWEAVE_SECRETS_KEY"), "{text}");
    let mut config = pipeline_svc::Config::for_database(app.db_url.clone());
    config.secrets_key = Some("too-short".into());
    let e = pipeline_svc::App::build(config)
        .await
        .err()
        .expect("a bad key stops the start");
    assert!(format!("{e:#}").contains("32 bytes"), "{e:#}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_template_splicing_a_secret_is_422_pointing_at_secrets_and_one_naming_them_is_stored() {
    let app = spawn_with(no_runner()).await;
    let r = app
        .put_template(
            "splice",
            "jobs:\n  - { name: a, image: x, script: [\"curl -H ${{ secrets.DEPLOY_TOKEN }} x\"] }\n",
        )
        .await;
    let (status, code, message) = envelope(r).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "invalid_template"),
        "{message}"
    );
    assert!(message.contains("secrets:"), "{message}");
    let r = app
        .put_template(
            "named",
            "jobs:\n  - name: a\n    image: x\n    script: [\"./deploy\"]\n    secrets: [DEPLOY_TOKEN, {name: NPM_TOKEN, env: NODE_AUTH_TOKEN}]\n",
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.expect("body"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_start_with_the_old_key_given_reseals_every_secret_under_the_new_one() {
    use pipeline_svc::secret_box::{Scope, SecretBox};
    let app = spawn_with(with_token()).await;
    app.create_repo("web").await;
    let r = app
        .put_json("/repos/web/secrets/DEPLOY_TOKEN", &json!({"value": VALUE}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let old_key = std::fs::read_to_string(
        pipeline_svc::Config::for_database("x")
            .data_dir
            .join(pipeline_svc::secret_box::KEY_FILE),
    )
    .expect("the test instances' key file");
    let new_key = format!("{}A=", "C".repeat(42));

    let mut config = pipeline_svc::Config::for_database(app.db_url.clone());
    config.secrets_key = Some(new_key.clone());
    config.secrets_old_key = Some(old_key.trim().to_owned());
    drop(pipeline_svc::App::build(config).await.expect("rotates"));

    // Sealed under the new key now: it opens with it, and the old key alone is refused.
    let pool = sqlx::PgPool::connect(&app.db_url).await.expect("db");
    let (repo_id, nonce, ct): (uuid::Uuid, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT repo_id, nonce, ciphertext FROM secrets")
            .fetch_one(&pool)
            .await
            .expect("row");
    pool.close().await;
    let b = SecretBox::from_base64(&new_key, "test").expect("key");
    let v = b
        .open(Scope::Repo(repo_id), "DEPLOY_TOKEN", &nonce, &ct)
        .expect("opens");
    assert_eq!(v.expose(), VALUE);
    let mut config = pipeline_svc::Config::for_database(app.db_url.clone());
    config.secrets_key = Some(old_key.trim().to_owned());
    let e = pipeline_svc::App::build(config)
        .await
        .err()
        .expect("the old key is refused now");
    assert!(format!("{e:#}").contains("does not match"), "{e:#}");
    app.shutdown().await;
}
