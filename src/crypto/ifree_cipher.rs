//! The symmetric cipher for ifree's `partner_sp`, `ubifill` and `ptn_sp`, keyed with a member's
//! 32-character key. ifree does not publish it (see README "Assumptions"), so it is a named,
//! configurable choice isolated here; the real one drops in as another variant.

use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-CBC, PKCS#7, key = the 32 key characters, IV = their first 16; base64.
    /// The common convention of Korean partner APIs, and the default.
    Aes256CbcKeyIv,
    /// AES-256-CBC, PKCS#7, a random 16-byte IV before the ciphertext; base64.
    Aes256CbcIvPrefix,
}

impl Cipher {
    pub const DEFAULT: Cipher = Cipher::Aes256CbcKeyIv;

    pub fn parse(name: &str) -> Option<Cipher> {
        match name {
            "aes-256-cbc-key-iv" => Some(Cipher::Aes256CbcKeyIv),
            "aes-256-cbc-iv-prefix" => Some(Cipher::Aes256CbcIvPrefix),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256CbcKeyIv => "aes-256-cbc-key-iv",
            Cipher::Aes256CbcIvPrefix => "aes-256-cbc-iv-prefix",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("member key must be 32 bytes")]
    Key,
    #[error("ciphertext is not base64")]
    Encoding,
    #[error("ciphertext does not decrypt under the member key")]
    Decrypt,
}

fn key32(key: &[u8]) -> Result<[u8; 32], CipherError> {
    key.try_into().map_err(|_| CipherError::Key)
}

pub fn encrypt(c: Cipher, key: &[u8], plain: &[u8]) -> Result<String, CipherError> {
    let k = key32(key)?;
    match c {
        Cipher::Aes256CbcKeyIv => {
            let iv: [u8; 16] = k[..16].try_into().map_err(|_| CipherError::Key)?;
            let ct = Enc::new(&k.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
            Ok(STANDARD.encode(ct))
        }
        Cipher::Aes256CbcIvPrefix => {
            let mut iv = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut iv);
            let ct = Enc::new(&k.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
            Ok(STANDARD.encode([&iv[..], &ct].concat()))
        }
    }
}

pub fn decrypt(c: Cipher, key: &[u8], b64: &str) -> Result<Vec<u8>, CipherError> {
    let k = key32(key)?;
    let data = STANDARD
        .decode(b64.trim())
        .map_err(|_| CipherError::Encoding)?;
    let (iv, ct): ([u8; 16], &[u8]) = match c {
        Cipher::Aes256CbcKeyIv => (k[..16].try_into().map_err(|_| CipherError::Key)?, &data[..]),
        Cipher::Aes256CbcIvPrefix => {
            if data.len() < 32 {
                return Err(CipherError::Decrypt);
            }
            (
                data[..16].try_into().map_err(|_| CipherError::Decrypt)?,
                &data[16..],
            )
        }
    };
    Dec::new(&k.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| CipherError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn round_trips() {
        for c in [Cipher::Aes256CbcKeyIv, Cipher::Aes256CbcIvPrefix] {
            let ct = encrypt(c, KEY, "비밀번호123".as_bytes()).unwrap();
            assert_eq!(decrypt(c, KEY, &ct).unwrap(), "비밀번호123".as_bytes());
            let wrong = decrypt(c, b"0123456789abcdefghijklmnopqrstuX", &ct);
            assert!(wrong.map_or(true, |p| p != "비밀번호123".as_bytes()));
            assert_eq!(Cipher::parse(c.name()), Some(c));
        }
        assert_eq!(
            decrypt(Cipher::DEFAULT, KEY, "%%%"),
            Err(CipherError::Encoding)
        );
        assert_eq!(
            encrypt(Cipher::DEFAULT, b"short", b"x"),
            Err(CipherError::Key)
        );
    }

    #[test]
    fn key_iv_matches_a_known_vector() {
        // openssl enc -aes-256-cbc -K <hex of KEY> -iv <hex of KEY[..16]> of "1234" (base64).
        let ct = encrypt(Cipher::Aes256CbcKeyIv, KEY, b"1234").unwrap();
        assert_eq!(ct, "MXKpuuIJbCeGDwx3u0TE3Q==");
        assert_eq!(decrypt(Cipher::Aes256CbcKeyIv, KEY, &ct).unwrap(), b"1234");
    }
}
