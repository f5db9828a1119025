//! The master key that seals org credentials at rest (AES-256-GCM).
//!
//! It comes from `SFPG_MASTER_KEY` (base64 of 32 bytes), or from a key file
//! (`SFPG_MASTER_KEY_FILE`, default `$XDG_CONFIG_HOME/sfpg/master.key` or
//! `~/.config/sfpg/master.key`) created with mode 0600 on first use. The key never leaves
//! memory in any other form: it has no `Debug` output and is zeroed on drop.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use thiserror::Error;

pub const MASTER_KEY_ENV: &str = "SFPG_MASTER_KEY";
pub const MASTER_KEY_FILE_ENV: &str = "SFPG_MASTER_KEY_FILE";

/// Sealed blobs start with this byte, so a future key or cipher change can be told apart.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, Error)]
pub enum MasterKeyError {
    #[error("{MASTER_KEY_ENV} must be the base64 encoding of exactly 32 bytes")]
    BadEnv,
    #[error("the master key file {path} must hold the base64 encoding of exactly 32 bytes")]
    BadFile { path: PathBuf },
    #[error(
        "the master key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    LooseFile { path: PathBuf, mode: u32 },
    #[error("the master key file {path} is a directory; name the key file itself")]
    NotAFile { path: PathBuf },
    #[error("cannot read or create the master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no master key: set {MASTER_KEY_ENV}, or {MASTER_KEY_FILE_ENV}, or HOME so a key file can be kept"
    )]
    NowhereToKeep,
    #[error(
        "no master key at {path}: the orgs' credentials are sealed with the key `sfpg org add` \
         created; set {MASTER_KEY_FILE_ENV} (or {MASTER_KEY_ENV}) to that key \
         (`sfpg demo` keeps its own in the state directory it prints)"
    )]
    Missing { path: PathBuf },
    #[error(
        "stored credentials of org {org} cannot be opened with this master key (a different key, or altered data)"
    )]
    WrongKey { org: String },
}

/// Where the key came from, for the one message a user sees when a key file is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    CreatedFile(PathBuf),
}

pub struct MasterKey {
    key: SecretBox<[u8; 32]>,
}

/// Where the configuration says the key is.
enum Configured {
    Key(MasterKey),
    File(PathBuf),
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        MasterKey::from_bytes(*self.key.expose_secret())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey {
            key: SecretBox::new(Box::new(bytes)),
        }
    }

    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey::from_bytes(bytes)
    }

    fn from_base64(text: &str) -> Option<MasterKey> {
        let bytes = BASE64.decode(text.trim()).ok()?;
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(MasterKey::from_bytes(array))
    }

    /// The key from the environment or the key file, creating the file if there is none.
    pub fn load_or_create() -> Result<(MasterKey, KeySource), MasterKeyError> {
        match MasterKey::configured()? {
            Configured::Key(key) => Ok((key, KeySource::Environment)),
            Configured::File(path) => MasterKey::load_or_create_file(&path),
        }
    }

    /// The key from the environment or the key file, which must exist: a command that only
    /// opens stored credentials has no use for a new key, and must not leave one behind.
    pub fn load() -> Result<(MasterKey, KeySource), MasterKeyError> {
        match MasterKey::configured()? {
            Configured::Key(key) => Ok((key, KeySource::Environment)),
            Configured::File(path) => {
                if !path.exists() {
                    return Err(MasterKeyError::Missing { path });
                }
                MasterKey::load_or_create_file(&path)
            }
        }
    }

    /// The key `SFPG_MASTER_KEY` holds, or else the key file's path.
    fn configured() -> Result<Configured, MasterKeyError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV)
            && !text.trim().is_empty()
        {
            let key = MasterKey::from_base64(&text).ok_or(MasterKeyError::BadEnv)?;
            return Ok(Configured::Key(key));
        }
        Ok(Configured::File(
            match std::env::var_os(MASTER_KEY_FILE_ENV) {
                Some(path) if !path.is_empty() => PathBuf::from(path),
                _ => default_key_file().ok_or(MasterKeyError::NowhereToKeep)?,
            },
        ))
    }

    /// The key in `path`, created with mode 0600 if the file does not exist.
    pub fn load_or_create_file(path: &Path) -> Result<(MasterKey, KeySource), MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        if path.is_dir() {
            return Err(MasterKeyError::NotAFile {
                path: path.to_owned(),
            });
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::LooseFile {
                        path: path.to_owned(),
                        mode,
                    });
                }
                let key = MasterKey::from_base64(&text).ok_or_else(|| MasterKeyError::BadFile {
                    path: path.to_owned(),
                })?;
                Ok((key, KeySource::File(path.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let key = MasterKey::generate();
                // create_new: two processes racing to create the key must not both win.
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                match created {
                    Ok(mut file) => {
                        let text = BASE64.encode(key.key.expose_secret());
                        file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
                        file.sync_all().map_err(io)?;
                        Ok((key, KeySource::CreatedFile(path.to_owned())))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        MasterKey::load_or_create_file(path)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`, bound to `org` (a blob moved to another org's row won't open).
    pub fn seal(&self, org: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = self.cipher();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: org.as_bytes(),
        };
        // AES-GCM encryption fails only for inputs over 64 GiB; credentials are a few KB.
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same org.
    pub fn open(&self, org: &str, sealed: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let wrong_key = || MasterKeyError::WrongKey {
            org: org.to_owned(),
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            return Err(wrong_key());
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: org.as_bytes(),
                },
            )
            .map_err(|_| wrong_key())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.expose_secret().into())
    }
}

fn default_key_file() -> Option<PathBuf> {
    let config_dir = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(config_dir.join("sfpg").join("master.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_with_the_same_key_and_org() {
        let key = MasterKey::generate();
        let sealed = key.seal("acme", b"client-secret-value");
        assert!(
            !sealed
                .windows(b"client-secret-value".len())
                .any(|w| w == b"client-secret-value")
        );
        assert_eq!(key.open("acme", &sealed).unwrap(), b"client-secret-value");
        assert!(matches!(
            key.open("other", &sealed),
            Err(MasterKeyError::WrongKey { .. })
        ));
        assert!(MasterKey::generate().open("acme", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("acme", &tampered).is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("sfpg-key-test-{}", std::process::id()));
        let path = dir.join("nested").join("master.key");
        let (first, source) = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(source, KeySource::CreatedFile(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, source) = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(source, KeySource::File(path.clone()));
        let sealed = first.seal("o", b"x");
        assert_eq!(second.open("o", &sealed).unwrap(), b"x");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create_file(&path),
            Err(MasterKeyError::LooseFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = MasterKey::from_bytes([7u8; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}
