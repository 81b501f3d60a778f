//! Cluster authentication: an optional shared key, and an HMAC-SHA256 tag on every message.
//!
//! With a key, every ZeroMQ message a server or client sends — peer envelopes, application
//! messages, client requests and responses — is the message's bytes followed by a 32-byte
//! HMAC-SHA256 of those bytes under the cluster key. A receiver verifies the tag (in constant
//! time) before it decodes anything, and drops what does not verify. Threat model:
//! docs/security.md; byte layout: docs/wire.md.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag appended to every message.
pub const TAG_BYTES: usize = 32;
/// Bytes of a generated key.
pub const KEY_BYTES: usize = 32;

/// A cluster key (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Vec<u8>);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a key file could not be used.
#[derive(Debug)]
pub struct KeyError {
    /// The key file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster key file {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for KeyError {}

impl ClusterKey {
    /// A key from raw bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Option<ClusterKey> {
        (bytes.len() >= 16).then(|| ClusterKey(bytes.to_vec()))
    }

    /// Read a key file: hex text (whitespace ignored), at least 16 bytes of key. Refused when
    /// the file is readable or writable by group or others: a key anyone can read
    /// authenticates anyone.
    pub fn load(path: impl AsRef<Path>) -> Result<ClusterKey, KeyError> {
        let path = path.as_ref();
        let err = |problem: String| KeyError { path: path.to_path_buf(), problem };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "permissions {mode:03o} let other users read or change it; run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes =
            decode_hex(&hex).ok_or_else(|| err("expected hexadecimal text (as `leader keygen` writes)".into()))?;
        ClusterKey::from_bytes(&bytes).ok_or_else(|| err(format!("{} bytes of key; at least 16 needed", bytes.len())))
    }

    /// Write a new random key to `path` (mode 0600, refusing to overwrite).
    pub fn generate(path: impl AsRef<Path>) -> Result<(), KeyError> {
        let path = path.as_ref();
        let err = |problem: String| KeyError { path: path.to_path_buf(), problem };
        let key: Vec<u8> = (0..KEY_BYTES).map(|_| rand::random::<u8>()).collect();
        let text: String = key.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options.open(path).map_err(|e| err(format!("cannot create it: {e}")))?;
        file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(|e| err(format!("cannot write it: {e}")))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// `message` followed by its tag.
    pub fn seal(&self, mut message: Vec<u8>) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(&message);
        message.extend_from_slice(&mac.finalize().into_bytes());
        message
    }

    /// The message inside `frame` if its tag verifies (compared in constant time).
    pub fn open<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let split = frame.len().checked_sub(TAG_BYTES)?;
        let (message, tag) = frame.split_at(split);
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(tag).ok().map(|()| message)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Seal with the key if there is one (no key: the message as is).
pub fn seal(key: Option<&ClusterKey>, message: Vec<u8>) -> Vec<u8> {
    match key {
        Some(key) => key.seal(message),
        None => message,
    }
}

/// Open with the key if there is one; `None` when the tag does not verify.
pub fn open<'a>(key: Option<&ClusterKey>, frame: &'a [u8]) -> Option<&'a [u8]> {
    match key {
        Some(key) => key.open(frame),
        None => Some(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_only_with_the_same_key_and_unchanged() {
        let key = ClusterKey::from_bytes(&[7; 32]).unwrap();
        let other = ClusterKey::from_bytes(&[8; 32]).unwrap();
        let frame = key.seal(b"hello".to_vec());
        assert_eq!(frame.len(), 5 + TAG_BYTES);
        assert_eq!(key.open(&frame), Some(&b"hello"[..]));
        assert_eq!(other.open(&frame), None);
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 1;
            assert_eq!(key.open(&bad), None, "a flipped bit at {i} is caught");
        }
        assert_eq!(key.open(&frame[..TAG_BYTES - 1]), None);
    }

    #[test]
    fn the_tag_is_standard_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = ClusterKey(b"Jefe".to_vec());
        let frame = key.seal(b"what do ya want for nothing?".to_vec());
        let tag: String = frame[frame.len() - TAG_BYTES..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(tag, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn key_files_are_generated_private_and_loose_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        ClusterKey::generate(&path).unwrap();
        let key = ClusterKey::load(&path).unwrap();
        assert_eq!(key.0.len(), KEY_BYTES);
        assert!(ClusterKey::generate(&path).is_err(), "never overwrites a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = ClusterKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("644") && err.contains("chmod 600"), "{err}");
        }
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(ClusterKey::load(&bad).unwrap_err().to_string().contains("hexadecimal"));
    }
}
