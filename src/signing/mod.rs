//! Model signatures in the OpenSSF model signing format v1.0 (OMS, what Python's
//! `model_signing` 1.x writes and verifies): `model.sig` is a Sigstore bundle v0.3 whose DSSE
//! envelope carries an in-toto Statement with predicate `https://model_signing/signature/v1.0`
//! and the "files" serialization (`manifest`), signed with ECDSA P-256 / SHA-256 (`keys`).
//!
//! Verification always recomputes the digests; the signature is checked against a public key
//! the caller configures, never one taken from the bundle.

pub mod bundle;
mod error;
pub mod keys;
pub mod manifest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::SignatureError;
pub use keys::{PrivateKey, PublicKey, Signer};
pub use manifest::FileDigest;

use bundle::{Bundle, Envelope, EnvelopeSignature, KeyIdentifier, Predicate, Resource, Serialization, Statement};
use manifest::Ignored;

/// The signature's file name in a model directory (model_signing's default).
pub const SIGNATURE_FILE: &str = "model.sig";
/// Bundles larger than this are refused unread: 16 MiB holds the manifest of 100,000 files.
pub const MAX_BUNDLE_BYTES: u64 = 16 << 20;

/// What a signature covers, once written or verified.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The subject's name: the model directory's (or file's) name, informative only.
    pub model_name: String,
    pub files: Vec<FileDigest>,
    /// SHA-256 over the files' digests in order: the statement's subject digest.
    pub root: [u8; 32],
    /// The key hint the bundle records (`None` when it records none).
    pub key_hint: Option<String>,
    /// Whether the signature was checked against a public key (else only the digests).
    pub signature_checked: bool,
}

/// What a verification trusts.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// The signature must verify with this key.
    Key(&'a PublicKey),
    /// No key configured: only the digests are checked (they catch corruption, not forgery).
    DigestsOnly,
}

/// Where a model's signature lives by default: `model.sig` inside a model directory, beside a
/// single-file model.
pub fn default_signature_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join(SIGNATURE_FILE)
    } else {
        model.parent().unwrap_or(Path::new(".")).join(SIGNATURE_FILE)
    }
}

/// Sign the model at `model` (a directory or one file) and write the bundle to `signature`
/// (written beside, then renamed, so a bundle on disk is always whole).
pub fn sign(model: &Path, signer: &dyn Signer, signature: &Path) -> Result<Signed, SignatureError> {
    let ignored = ignored_for(model, signature);
    let files = manifest::hash_model(model, &ignored)?;
    let root = manifest::root_digest(&files);
    let model_name = model_name(model);
    let statement = Statement {
        statement_type: bundle::STATEMENT_TYPE.into(),
        subject: vec![bundle::Subject {
            name: model_name.clone(),
            digest: BTreeMap::from([("sha256".to_string(), crate::data::files::hex(&root))]),
        }],
        predicate_type: bundle::PREDICATE_TYPE.into(),
        predicate: serde_json::to_value(Predicate {
            resources: files
                .iter()
                .map(|f| Resource {
                    name: f.name.clone(),
                    algorithm: "sha256".into(),
                    digest: crate::data::files::hex(&f.sha256),
                })
                .collect(),
            serialization: Serialization {
                method: "files".into(),
                hash_type: "sha256".into(),
                allow_symlinks: false,
                ignore_paths: ignored.recorded(),
            },
        })
        .expect("a predicate always serializes"),
    };
    let payload = serde_json::to_vec(&statement).expect("a statement always serializes");
    let sig = signer.sign(&bundle::pae(bundle::PAYLOAD_TYPE, &payload))?;
    let hint = signer.public_key().hint().to_string();
    let written = Bundle {
        media_type: bundle::BUNDLE_MEDIA_TYPE.into(),
        verification_material: bundle::VerificationMaterial {
            public_key: Some(KeyIdentifier { hint: hint.clone() }),
            ..Default::default()
        },
        dsse_envelope: Some(Envelope {
            payload: bundle::encode(&payload),
            payload_type: bundle::PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature { sig: bundle::encode(&sig), keyid: None }],
        }),
        message_signature: None,
    };
    write_whole(signature, &serde_json::to_vec(&written).expect("a bundle always serializes"))?;
    Ok(Signed { model_name, files, root, key_hint: Some(hint), signature_checked: true })
}

/// Verify the model at `model` against the bundle at `signature`: the bundle's layers, the
/// signature (with `Trust::Key`), then every file's digest, no file missing and none added.
pub fn verify(model: &Path, signature: &Path, trust: Trust) -> Result<Signed, SignatureError> {
    let bytes = bundle::read_bounded(signature, MAX_BUNDLE_BYTES)?
        .ok_or_else(|| SignatureError::BundleTooLarge { path: signature.to_path_buf(), limit: MAX_BUNDLE_BYTES })?;
    let (parsed, payload, sig) = bundle::parse(signature, &bytes)?;
    let key_hint = parsed.verification_material.public_key.map(|k| k.hint).filter(|h| !h.is_empty());
    if let Trust::Key(key) = trust {
        // The hint only names the key early; the signature decides.
        if let Some(found) = &key_hint
            && found != key.hint()
        {
            return Err(SignatureError::OtherKey {
                path: signature.to_path_buf(),
                found: found.clone(),
                expected: key.hint().to_string(),
            });
        }
        if !key.verifies(&bundle::pae(bundle::PAYLOAD_TYPE, &payload), &sig) {
            return Err(SignatureError::BadSignature { path: signature.to_path_buf() });
        }
    }
    let (statement, predicate) = bundle::statement(signature, &payload)?;
    let expected = signed_files(signature, &statement, &predicate, model.is_dir())?;
    let mut ignored = ignored_for(model, signature);
    for path in &predicate.serialization.ignore_paths {
        check_ignore_path(signature, path)?;
        ignored.add(path);
    }
    let actual = manifest::hash_model(model, &ignored)?;
    compare(model, signature, &expected, &actual)?;
    Ok(Signed {
        model_name: statement.subject[0].name.clone(),
        root: manifest::root_digest(&expected),
        files: expected,
        key_hint,
        signature_checked: matches!(trust, Trust::Key(_)),
    })
}

/// The files a statement signs, checked: the "files" method with SHA-256, well-formed names
/// and digests, one subject whose digest is the root of the resources.
fn signed_files(
    path: &Path,
    statement: &Statement,
    predicate: &Predicate,
    directory: bool,
) -> Result<Vec<FileDigest>, SignatureError> {
    let corrupt = |reason: String| SignatureError::corrupt(path, reason);
    let serialization = &predicate.serialization;
    if serialization.method != "files" || serialization.hash_type != "sha256" {
        return Err(SignatureError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "serialization `{}` with `{}`: only the \"files\" method with sha256 is verified (model_signing's \
                 CLI verifies no other either)",
                serialization.method, serialization.hash_type
            ),
        });
    }
    let mut files = Vec::with_capacity(predicate.resources.len());
    let mut seen = std::collections::HashSet::new();
    for resource in &predicate.resources {
        manifest::check_name(&resource.name).map_err(corrupt)?;
        if resource.algorithm != "sha256" {
            return Err(corrupt(format!("resource `{}`: `algorithm` must be `sha256`", resource.name)));
        }
        let sha256 = parse_digest(&resource.digest)
            .ok_or_else(|| corrupt(format!("resource `{}`: `digest` is not 64 hex digits", resource.name)))?;
        if !seen.insert(resource.name.as_str()) {
            return Err(corrupt(format!("resource `{}` is listed twice", resource.name)));
        }
        files.push(FileDigest { name: resource.name.clone(), sha256 });
    }
    if directory && seen.contains(".") {
        return Err(corrupt("resource `.` names a single-file model, but the model is a directory".into()));
    }
    let [subject] = statement.subject.as_slice() else {
        return Err(corrupt(format!("the statement must have one subject. Given: {}", statement.subject.len())));
    };
    let root = crate::data::files::hex(&manifest::root_digest(&files));
    if subject.digest.get("sha256") != Some(&root) {
        return Err(corrupt(
            "the subject's digest is not the digest of the resources listed (manifest inconsistent)".into(),
        ));
    }
    Ok(files)
}

/// Compare the signed files with the model's as maps (model_signing's verifier ignores the
/// order): every difference named, changed files first.
fn compare(
    model: &Path,
    signature: &Path,
    expected: &[FileDigest],
    actual: &[FileDigest],
) -> Result<(), SignatureError> {
    let mut expected: BTreeMap<&str, [u8; 32]> = expected.iter().map(|f| (f.name.as_str(), f.sha256)).collect();
    // A single-file model may be named by its basename (OMS) or `.` (model_signing).
    if let [only] = actual
        && only.name == "."
        && expected.len() == 1
        && !expected.contains_key(".")
        && let Some(digest) = expected.remove(model_name(model).as_str())
    {
        expected.insert(".", digest);
    }
    let mut details = Vec::new();
    for file in actual {
        match expected.remove(file.name.as_str()) {
            Some(digest) if digest != file.sha256 => details.push(format!(
                "`{}` changed (signed sha256 {}, found {})",
                file.name,
                crate::data::files::hex(&digest),
                crate::data::files::hex(&file.sha256)
            )),
            Some(_) => {}
            None => details.push(format!("`{}` is not signed (an extra file)", file.name)),
        }
    }
    details.extend(expected.keys().map(|name| format!("`{name}` is signed but missing")));
    if details.is_empty() {
        return Ok(());
    }
    Err(SignatureError::Mismatch {
        model: model.to_path_buf(),
        signature: signature.to_path_buf(),
        details: details.join("; "),
    })
}

/// The defaults, and the signature itself when it lies inside the model directory; nothing
/// for a single-file model.
fn ignored_for(model: &Path, signature: &Path) -> Ignored {
    if !model.is_dir() {
        return Ignored::default();
    }
    let mut ignored = Ignored::defaults(SIGNATURE_FILE);
    if let Ok(inside) = absolute(signature).strip_prefix(absolute(model))
        && let Some(relative) = inside.to_str()
    {
        ignored.add(relative);
    }
    ignored
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn check_ignore_path(signature: &Path, path: &str) -> Result<(), SignatureError> {
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(SignatureError::corrupt(signature, format!("ignore path `{path}` lies outside the model")));
    }
    Ok(())
}

/// The model's name for the subject: the last component of its absolute path.
fn model_name(model: &Path) -> String {
    absolute(model).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Write `bytes` to `path` through a temporary file beside it, renamed once complete.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), SignatureError> {
    let write = |source| SignatureError::Write { path: path.to_path_buf(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(write)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        write(e)
    })
}

#[cfg(test)]
mod tests;
