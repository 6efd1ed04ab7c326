//! `gitweave --ca-cert FILE` (and `GITWEAVE_CA_CERT`) against an `https://` gateway whose
//! certificate a private CA signed: a TLS proxy on loopback (rustls, the certificates made by
//! the openssl CLI) in front of the real test stack.

use crate::helpers::{TestApp, bin, no_runner, spawn_with};
use assert_cmd::assert::Assert;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use uuid::Uuid;

/// A temporary directory, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 (`server.pem`,
/// `server.key`), in `dir`.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=gitweave test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Serves TLS on a loopback port with `server.pem`, forwarding every connection to
/// `upstream` (`127.0.0.1:PORT`); answers `https://127.0.0.1:PORT`.
async fn tls_proxy(dir: &Path, upstream: String) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A client refusing the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    format!("https://{addr}")
}

/// `gitweave ARGS…` with `envs` and nothing of the caller's GITWEAVE_* settings.
async fn run(args: Vec<String>, envs: Vec<(&'static str, String)>) -> Assert {
    let mut cmd = assert_cmd::Command::new(bin("gitweave"));
    cmd.env_remove("GITWEAVE_API_TOKEN")
        .env_remove("GITWEAVE_URL")
        .env_remove("GITWEAVE_REPO")
        .env_remove("GITWEAVE_CA_CERT")
        .env("NO_COLOR", "1")
        .envs(envs)
        .args(args)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the CLI ran")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn ca_cert_lets_the_cli_trust_a_gateway_behind_a_private_ca() {
    let app: TestApp = spawn_with(no_runner()).await;
    app.create_repo("shop").await;
    let dir = Dir(std::env::temp_dir().join(format!("gitweave-tls-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    make_certificates(&dir.0);
    let upstream = app
        .gateway
        .strip_prefix("http://")
        .expect("an http gateway")
        .to_owned();
    let url = tls_proxy(&dir.0, upstream).await;
    let ca = dir.0.join("ca.pem").display().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec!["--url".to_owned(), url.clone()];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };

    // Without the CA: refused, saying it was the certificate and what to pass.
    let refused = run(args(&["runs", "shop"]), vec![]).await.code(2);
    let err = text(&refused.get_output().stderr);
    assert!(
        err.contains("certificate") && err.contains("--ca-cert"),
        "{err}"
    );

    // With --ca-cert, and with GITWEAVE_CA_CERT: the API answers through TLS.
    for (extra, envs) in [
        (vec!["--ca-cert", ca.as_str()], vec![]),
        (vec![], vec![("GITWEAVE_CA_CERT", ca.clone())]),
    ] {
        let mut a = extra.clone();
        a.extend(["runs", "shop"]);
        let ok = run(args(&a), envs).await.success();
        let out = text(&ok.get_output().stdout);
        assert!(out.starts_with("RUN"), "{out}");
    }

    // A file that is not PEM, and one over the cap, are refused before any request.
    let junk = dir.0.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let junk_arg = junk.display().to_string();
    let bad = run(args(&["--ca-cert", &junk_arg, "runs", "shop"]), vec![])
        .await
        .code(2);
    let err = text(&bad.get_output().stderr);
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let big = dir.0.join("big.pem");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).expect("write");
    let big_arg = big.display().to_string();
    let bad = run(args(&["--ca-cert", &big_arg, "runs", "shop"]), vec![])
        .await
        .code(2);
    let err = text(&bad.get_output().stderr);
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    app.shutdown().await;
}
