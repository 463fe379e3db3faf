//! ECDSA P-256 keys in PEM, as `openssl` and Python's `cryptography` write them, and the key
//! hint `model_signing` records: hex SHA-256 of the public key's PEM (SubjectPublicKeyInfo,
//! 64-character lines, LF line ends).

use std::path::Path;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

use super::SignatureError;

/// The only key kind model_signing, OMS and AWS KMS (`ECC_NIST_P256`) agree on for us.
const EXPECTED: &str = "an ECDSA P-256 (prime256v1) key in PEM";

/// Private keys larger than this are not P-256 PEM keys (one is about 230 bytes).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A public key that signatures are verified against: the trust anchor, never taken from a
/// bundle.
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: VerifyingKey,
    hint: String,
}

impl PublicKey {
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), the text `openssl ec -pubout`
    /// writes. `source` names it in messages (a path, or an environment variable).
    pub fn from_pem(text: &str, source: &str) -> Result<Self, SignatureError> {
        let key = match pem_label(text) {
            Some("PUBLIC KEY") => VerifyingKey::from_public_key_pem(text.trim())
                .map_err(|e| key_error(source, format!("expected {EXPECTED} ({e})")))?,
            Some(label) => return Err(key_error(source, format!("expected a `PUBLIC KEY` PEM, found `{label}`"))),
            None => {
                return Err(key_error(source, format!("expected {EXPECTED}: no `-----BEGIN PUBLIC KEY-----` line")));
            }
        };
        Ok(Self::new(key))
    }

    /// Read a public key PEM file.
    pub fn read(path: &Path) -> Result<Self, SignatureError> {
        Self::from_pem(&read_key_file(path)?, &path.display().to_string())
    }

    fn new(key: VerifyingKey) -> Self {
        let pem = key.to_public_key_pem(LineEnding::LF).expect("a P-256 point always encodes");
        let hint = crate::data::files::hex(&Sha256::digest(pem.as_bytes()));
        Self { key, hint }
    }

    /// model_signing's key hint: hex SHA-256 of this key's PEM.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The SubjectPublicKeyInfo PEM with LF line ends (what `model_signing verify key` reads).
    pub fn to_pem(&self) -> String {
        self.key.to_public_key_pem(LineEnding::LF).expect("a P-256 point always encodes")
    }

    /// Whether `der` is a DER ECDSA signature by this key over SHA-256(`message`).
    pub fn verifies(&self, message: &[u8], der: &[u8]) -> bool {
        Signature::from_der(der).is_ok_and(|sig| self.key.verify(message, &sig).is_ok())
    }
}

/// What signs a statement: a local key, or a key held elsewhere (AWS KMS).
pub trait Signer {
    /// The public half, whose hint goes into the bundle.
    fn public_key(&self) -> &PublicKey;
    /// A DER ECDSA P-256 signature over SHA-256(`message`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignatureError>;
}

/// A private key read from a PEM file: SEC1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey`
/// writes) or PKCS#8 (`PRIVATE KEY`, what `openssl genpkey` writes). Deterministic signatures
/// (RFC 6979): the same key and model give the same bundle.
pub struct PrivateKey {
    key: SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    pub fn from_pem(text: &str, source: &str) -> Result<Self, SignatureError> {
        let parsed = match pem_label(text) {
            Some("EC PRIVATE KEY") => {
                p256::SecretKey::from_sec1_pem(text.trim()).map(SigningKey::from).map_err(|e| e.to_string())
            }
            Some("PRIVATE KEY") => SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| e.to_string()),
            Some("ENCRYPTED PRIVATE KEY") => {
                return Err(key_error(
                    source,
                    "the key is encrypted; decrypt it first (`openssl pkey -in KEY -out PLAIN`)".to_string(),
                ));
            }
            Some(label) => {
                return Err(key_error(
                    source,
                    format!("expected an `EC PRIVATE KEY` or `PRIVATE KEY` PEM, found `{label}`"),
                ));
            }
            None => {
                return Err(key_error(
                    source,
                    format!("expected {EXPECTED}: no `-----BEGIN ... PRIVATE KEY-----` line"),
                ));
            }
        };
        let key = parsed.map_err(|e| key_error(source, format!("expected {EXPECTED} ({e})")))?;
        let public = PublicKey::new(*key.verifying_key());
        Ok(Self { key, public })
    }

    /// Read a private key PEM file.
    pub fn read(path: &Path) -> Result<Self, SignatureError> {
        Self::from_pem(&read_key_file(path)?, &path.display().to_string())
    }

    /// A key from its 32-byte scalar (tests and fixtures).
    pub fn from_scalar(bytes: &[u8]) -> Result<Self, SignatureError> {
        let key = SigningKey::from_slice(bytes).map_err(|e| key_error("scalar", e.to_string()))?;
        let public = PublicKey::new(*key.verifying_key());
        Ok(Self { key, public })
    }
}

/// Never prints the secret.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("hint", &self.public.hint).finish_non_exhaustive()
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let signature: Signature = self.key.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// The label of the first PEM block: `-----BEGIN <label>-----`.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    rest.find("-----").map(|end| &rest[..end])
}

fn read_key_file(path: &Path) -> Result<String, SignatureError> {
    let bytes = super::bundle::read_bounded(path, MAX_KEY_FILE_BYTES)?
        .ok_or_else(|| key_error(&path.display().to_string(), format!("expected {EXPECTED}: the file is too large")))?;
    String::from_utf8(bytes)
        .map_err(|_| key_error(&path.display().to_string(), format!("expected {EXPECTED}: not text")))
}

fn key_error(source: &str, reason: String) -> SignatureError {
    SignatureError::Key { source_name: source.to_string(), reason }
}
