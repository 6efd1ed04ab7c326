use super::{KEY_FILE, KeySource, Scope, SecretBox, SecretBoxError, load_key};
use gitweave_api::secret::SecretValue;
use std::os::unix::fs::PermissionsExt as _;
use uuid::Uuid;

fn value() -> SecretValue {
    SecretValue::new("s3cr3t-value-for-tests".into())
}

#[test]
fn a_value_opens_only_in_its_own_row_and_under_its_own_key() {
    let b = SecretBox::new(&[7u8; 32]);
    let repo = Scope::Repo(Uuid::new_v4());
    let s = b.seal(repo, "DEPLOY_TOKEN", &value()).expect("seal");
    assert_eq!(s.nonce.len(), 24);
    assert!(
        !s.ciphertext.windows(6).any(|w| w == b"s3cr3t"),
        "no plaintext"
    );
    let opened = b
        .open(repo, "DEPLOY_TOKEN", &s.nonce, &s.ciphertext)
        .expect("opens");
    assert_eq!(opened, value());
    // Moved to another name, another repo, or global: it does not open.
    assert!(b.open(repo, "OTHER", &s.nonce, &s.ciphertext).is_err());
    assert!(
        b.open(
            Scope::Repo(Uuid::new_v4()),
            "DEPLOY_TOKEN",
            &s.nonce,
            &s.ciphertext
        )
        .is_err()
    );
    assert!(
        b.open(Scope::Global, "DEPLOY_TOKEN", &s.nonce, &s.ciphertext)
            .is_err()
    );
    // Another key, or a flipped bit: it does not open either.
    let other = SecretBox::new(&[8u8; 32]);
    assert!(
        other
            .open(repo, "DEPLOY_TOKEN", &s.nonce, &s.ciphertext)
            .is_err()
    );
    let mut bad = s.ciphertext.clone();
    bad[0] ^= 1;
    assert!(b.open(repo, "DEPLOY_TOKEN", &s.nonce, &bad).is_err());
    assert!(matches!(
        b.open(repo, "DEPLOY_TOKEN", &s.nonce[..12], &s.ciphertext),
        Err(SecretBoxError::Open)
    ));
}

#[test]
fn every_seal_has_a_fresh_nonce() {
    let b = SecretBox::new(&[1u8; 32]);
    let a = b.seal(Scope::Global, "X", &value()).expect("seal");
    let c = b.seal(Scope::Global, "X", &value()).expect("seal");
    assert_ne!(a.nonce, c.nonce);
    assert_ne!(a.ciphertext, c.ciphertext);
}

#[test]
fn the_key_check_tells_keys_apart() {
    let b = SecretBox::new(&[1u8; 32]);
    let c = b.key_check().expect("check");
    assert!(b.verify_key_check(&c.nonce, &c.ciphertext));
    assert!(!SecretBox::new(&[2u8; 32]).verify_key_check(&c.nonce, &c.ciphertext));
}

#[test]
fn keys_must_be_32_bytes_of_base64_and_errors_show_no_key() {
    assert!(SecretBox::from_base64(&format!("{}=", "A".repeat(43)), "K").is_ok());
    for bad in ["", "not base64!", "AAAA", &"A".repeat(40)] {
        let e = SecretBox::from_base64(bad, "GITWEAVE_SECRETS_KEY").expect_err(bad);
        assert!(e.to_string().contains("GITWEAVE_SECRETS_KEY"), "{e}");
    }
    assert_eq!(
        format!("{:?}", SecretBox::new(&[9u8; 32])),
        "SecretBox([REDACTED])"
    );
}

#[test]
fn the_key_file_is_made_once_with_mode_0600_and_read_back() {
    let dir = std::env::temp_dir().join(format!("gw-keyfile-{}", Uuid::new_v4().simple()));
    let (first, src) = load_key(None, &dir).expect("made");
    let path = dir.join(KEY_FILE);
    assert_eq!(src, KeySource::NewKeyFile(path.clone()));
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (again, src) = load_key(None, &dir).expect("read");
    assert_eq!(src, KeySource::KeyFile(path.clone()));
    let s = first.seal(Scope::Global, "A", &value()).expect("seal");
    assert_eq!(
        again
            .open(Scope::Global, "A", &s.nonce, &s.ciphertext)
            .expect("same key"),
        value()
    );
    // The setting wins over the file.
    let (_, src) = load_key(Some(&format!("{}=", "A".repeat(43))), &dir).expect("setting");
    assert_eq!(src, KeySource::Setting);
    std::fs::write(&path, "garbage").expect("write");
    assert!(matches!(
        load_key(None, &dir),
        Err(SecretBoxError::BadKey { .. })
    ));
    std::fs::remove_dir_all(&dir).expect("clean up");
}
