//! Secrets at rest (SPEC §10): every value is sealed with XChaCha20-Poly1305 under the
//! service's key, with a random 24-byte nonce of its own and its scope (the repo id, or
//! global) and name as associated data, so a ciphertext copied to another row does not open.
//! The key comes from `GITWEAVE_SECRETS_KEY` (32 bytes, base64) or, unset, from the key file
//! `secrets.key` in `PIPELINE_DATA_DIR`, made on first start. A known plaintext sealed under
//! the key is kept in the database, so a start with another key fails at once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use gitweave_api::secret::SecretValue;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The key file's name inside `PIPELINE_DATA_DIR`.
pub const KEY_FILE: &str = "secrets.key";

const CHECK_AAD: &[u8] = b"gitweave/secrets-key-check/v1";
const CHECK_PLAINTEXT: &[u8] = b"gitweave secrets key check";

/// Where a secret belongs; part of the associated data of its ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Seen by every repo.
    Global,
    /// One repo's.
    Repo(Uuid),
}

impl Scope {
    /// `None` for global, as stored.
    pub fn repo_id(self) -> Option<Uuid> {
        match self {
            Scope::Global => None,
            Scope::Repo(id) => Some(id),
        }
    }

    /// The scope of a stored row.
    pub fn of(repo_id: Option<Uuid>) -> Self {
        repo_id.map_or(Scope::Global, Scope::Repo)
    }

    fn aad(self, name: &str) -> Vec<u8> {
        let scope = match self {
            Scope::Global => "global".to_owned(),
            Scope::Repo(id) => format!("repo:{id}"),
        };
        format!("gitweave/secret/v1\0{scope}\0{name}").into_bytes()
    }
}

/// A value sealed for storage.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The 24-byte nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// What can go wrong with the key or a sealed value. No variant carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    /// The configured key is not 32 bytes of base64.
    #[error(
        "{origin} must hold 32 bytes in standard base64 (make one with `head -c 32 /dev/urandom | base64`)"
    )]
    BadKey {
        /// Where the key came from.
        origin: String,
    },
    /// The key file could not be read or made.
    #[error(
        "the secrets key file {path} cannot be used ({source}); make PIPELINE_DATA_DIR writable by pipeline-svc, or set GITWEAVE_SECRETS_KEY"
    )]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database's secrets were sealed under another key.
    #[error(
        "the secrets key does not match the one this database's secrets were sealed with: start pipeline-svc with the key it used before (GITWEAVE_SECRETS_KEY or {KEY_FILE} in PIPELINE_DATA_DIR); see docs/SECURITY.md, \"Rotating the secrets key\""
    )]
    WrongKey,
    /// A stored value does not open: tampered, moved to another row, or another key.
    #[error(
        "a stored secret does not decrypt under the current key (moved, altered or sealed with another key)"
    )]
    Open,
    /// Encryption itself failed (it cannot for these sizes; kept typed rather than a panic).
    #[error("sealing a secret failed")]
    Seal,
}

/// The cipher under the service's key. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([REDACTED])")
    }
}

impl SecretBox {
    /// A box under `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// A box under a base64 key; `origin` names where it came from in the error.
    pub fn from_base64(text: &str, origin: &str) -> Result<Self, SecretBoxError> {
        let bad = || SecretBoxError::BadKey {
            origin: origin.to_owned(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self::new(&key))
    }

    fn seal_raw(&self, msg: &[u8], aad: &[u8]) -> Result<Sealed, SecretBoxError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, Payload { msg, aad })
            .map_err(|_| SecretBoxError::Seal)?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    fn open_raw(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecretBoxError> {
        if nonce.len() != 24 {
            return Err(SecretBoxError::Open);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SecretBoxError::Open)
    }

    /// Seals `value` for the row `(scope, name)`.
    pub fn seal(
        &self,
        scope: Scope,
        name: &str,
        value: &SecretValue,
    ) -> Result<Sealed, SecretBoxError> {
        self.seal_raw(value.expose().as_bytes(), &scope.aad(name))
    }

    /// Opens the value stored in the row `(scope, name)`.
    pub fn open(
        &self,
        scope: Scope,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretValue, SecretBoxError> {
        let bytes = self.open_raw(nonce, ciphertext, &scope.aad(name))?;
        String::from_utf8(bytes)
            .map(SecretValue::new)
            .map_err(|_| SecretBoxError::Open)
    }

    /// The key check value to store.
    pub fn key_check(&self) -> Result<Sealed, SecretBoxError> {
        self.seal_raw(CHECK_PLAINTEXT, CHECK_AAD)
    }

    /// Whether a stored key check value was made under this key.
    pub fn verify_key_check(&self, nonce: &[u8], ciphertext: &[u8]) -> bool {
        self.open_raw(nonce, ciphertext, CHECK_AAD)
            .is_ok_and(|p| p == CHECK_PLAINTEXT)
    }
}

/// How the key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `GITWEAVE_SECRETS_KEY` (or its `_FILE`).
    Setting,
    /// The key file, already there.
    KeyFile(PathBuf),
    /// The key file, made now.
    NewKeyFile(PathBuf),
}

/// The box for the configured key: `key` (already resolved from `GITWEAVE_SECRETS_KEY` or its
/// file) when set, else the key file in `data_dir`, made (mode 0600) when there is none.
pub fn load_key(
    key: Option<&str>,
    data_dir: &Path,
) -> Result<(SecretBox, KeySource), SecretBoxError> {
    if let Some(k) = key {
        return Ok((
            SecretBox::from_base64(k, "GITWEAVE_SECRETS_KEY")?,
            KeySource::Setting,
        ));
    }
    let path = data_dir.join(KEY_FILE);
    let io = |source| SecretBoxError::KeyFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let b = SecretBox::from_base64(&text, &format!("the key file {}", path.display()))?;
            return Ok((b, KeySource::KeyFile(path)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    create_dir_private(data_dir).map_err(io)?;
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    let text = format!("{}\n", STANDARD.encode(key));
    // Written whole under a private name, then linked into place: a second instance starting
    // at the same moment either links first (and this one reads its key) or finds ours.
    let tmp = data_dir.join(format!(".{KEY_FILE}.{}", Uuid::new_v4().simple()));
    write_private(&tmp, text.as_bytes()).map_err(io)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&key);
            Ok((SecretBox::new(&k), KeySource::NewKeyFile(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let b = SecretBox::from_base64(&text, &format!("the key file {}", path.display()))?;
            Ok((b, KeySource::KeyFile(path)))
        }
        Err(e) => Err(io(e)),
    }
}

fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Checks `b` against the database's key check value, storing one when there is none. When
/// the database was sealed under `old` instead (`GITWEAVE_SECRETS_OLD_KEY`), every secret is
/// re-sealed under `b` in one transaction first (key rotation); the count is returned.
pub async fn check_against(
    pool: &sqlx::PgPool,
    b: &SecretBox,
    old: Option<&SecretBox>,
) -> anyhow::Result<usize> {
    use gitweave_storage::secrets;
    if secrets::key_check(pool).await?.is_none() {
        let c = b.key_check()?;
        secrets::init_key_check(pool, &c.nonce, &c.ciphertext).await?;
    }
    // Read back: another instance may have stored its check first.
    match secrets::key_check(pool).await? {
        Some((nonce, ct)) if b.verify_key_check(&nonce, &ct) => Ok(0),
        Some((nonce, ct)) if old.is_some_and(|o| o.verify_key_check(&nonce, &ct)) => {
            let Some(old) = old else {
                return Err(SecretBoxError::WrongKey.into());
            };
            let mut tx = pool.begin().await?;
            let rows = secrets::all(&mut *tx).await?;
            for r in &rows {
                let scope = Scope::of(r.repo_id);
                let value = old.open(scope, &r.name, &r.nonce, &r.ciphertext)?;
                let sealed = b.seal(scope, &r.name, &value)?;
                secrets::reseal(
                    &mut *tx,
                    r.repo_id,
                    &r.name,
                    &sealed.nonce,
                    &sealed.ciphertext,
                )
                .await?;
            }
            let c = b.key_check()?;
            secrets::set_key_check(&mut *tx, &c.nonce, &c.ciphertext).await?;
            tx.commit().await?;
            Ok(rows.len())
        }
        _ => Err(SecretBoxError::WrongKey.into()),
    }
}

#[cfg(test)]
#[path = "secret_box_tests.rs"]
mod tests;
