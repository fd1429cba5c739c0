//! AES-256-GCM, HMAC and randomness: the only code that touches `ring`.
//!
//! Every sealed blob is `version (1 byte) || nonce (12 bytes) || ciphertext
//! || tag (16 bytes)`. The nonce is fresh from the system RNG for each seal.
//! Key bytes live in [`Key`], which is zeroized on drop; ring's expanded
//! key schedule is built on the stack for one operation and never kept.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes of every key we use (AES-256, HMAC-SHA256).
pub const KEY_LEN: usize = 32;
const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// A 256-bit secret key. Zeroized when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Key, CryptoError> {
        let mut key = Key([0; KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    /// Takes the bytes of a key; refuses any length but 32.
    pub fn from_slice(bytes: &[u8]) -> Result<Key, CryptoError> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError)?;
        Ok(Key(array))
    }

    /// The raw bytes, for sealing this key under another or splitting it.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// A seal or open failed. Deliberately says nothing about why: a wrong
/// key, a tampered blob and a wrong AAD look the same to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub struct CryptoError;

/// Fills `buf` from the operating system's CSPRNG (getrandom(2)).
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(buf).map_err(|_| CryptoError)
}

/// Encrypts and authenticates `plaintext`, binding it to `aad`.
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = less_safe_key(key)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[1 + NONCE_LEN..],
        )
        .map_err(|_| CryptoError)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Checks and decrypts a blob made by [`seal`] with the same key and AAD.
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD || sealed[0] != FORMAT_V1 {
        return Err(CryptoError);
    }
    let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| CryptoError)?;
    let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
    let len = less_safe_key(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptoError)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn less_safe_key(key: &Key) -> Result<LessSafeKey, CryptoError> {
    let unbound = UnboundKey::new(&AES_256_GCM, &key.0).map_err(|_| CryptoError)?;
    Ok(LessSafeKey::new(unbound))
}

/// The cryptography under TLS: ring, like everything else here.
pub fn tls_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &Key, data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key.0);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time equality of two byte strings (of public length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"record/1", b"hunter2").unwrap();
        assert_eq!(sealed.len(), 7 + SEAL_OVERHEAD);
        assert_eq!(&open(&key, b"record/1", &sealed).unwrap()[..], b"hunter2");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"", b"").unwrap();
        assert!(open(&key, b"", &sealed).unwrap().is_empty());
    }

    #[test]
    fn nonces_are_fresh() {
        let key = Key::generate().unwrap();
        assert_ne!(
            seal(&key, b"a", b"same").unwrap(),
            seal(&key, b"a", b"same").unwrap()
        );
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"aad", b"some secret value").unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered[i] ^= 1 << bit;
                assert_eq!(
                    open(&key, b"aad", &tampered),
                    Err(CryptoError),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn wrong_aad_is_refused() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"kv/mount/path/1", b"v").unwrap();
        assert_eq!(open(&key, b"kv/mount/path/2", &sealed), Err(CryptoError));
        assert_eq!(open(&key, b"", &sealed), Err(CryptoError));
    }

    #[test]
    fn wrong_key_is_refused() {
        let sealed = seal(&Key::generate().unwrap(), b"aad", b"v").unwrap();
        assert_eq!(
            open(&Key::generate().unwrap(), b"aad", &sealed),
            Err(CryptoError)
        );
    }

    #[test]
    fn truncated_or_garbage_is_refused() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"aad", b"value").unwrap();
        for len in 0..sealed.len() {
            assert_eq!(open(&key, b"aad", &sealed[..len]), Err(CryptoError));
        }
        assert_eq!(open(&key, b"aad", &[0u8; 64]), Err(CryptoError));
    }

    #[test]
    fn key_debug_prints_no_bytes() {
        let key = Key::from_slice(&[0xAB; 32]).unwrap();
        let printed = format!("{key:?}");
        assert!(!printed.contains("171") && !printed.to_lowercase().contains("ab"));
    }

    #[test]
    fn hmac_depends_on_key_and_data() {
        let (k1, k2) = (Key::generate().unwrap(), Key::generate().unwrap());
        assert_eq!(hmac_sha256(&k1, b"t"), hmac_sha256(&k1, b"t"));
        assert_ne!(hmac_sha256(&k1, b"t"), hmac_sha256(&k2, b"t"));
        assert_ne!(hmac_sha256(&k1, b"t"), hmac_sha256(&k1, b"u"));
    }
}
