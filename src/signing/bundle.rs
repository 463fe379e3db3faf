//! The layers of `model.sig`, outer to inner: a Sigstore bundle v0.3 (JSON), its DSSE
//! envelope, the in-toto Statement v1 it carries, and the OMS v1.0 predicate.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SignatureError;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Older bundle media types a verifier must still accept ([PS] sigstore_bundle.proto).
const OLDER_MEDIA_TYPES: [&str; 2] =
    ["application/vnd.dev.sigstore.bundle+json;version=0.1", "application/vnd.dev.sigstore.bundle+json;version=0.2"];
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// model_signing v0.2's predicate: verify-only in OMS, not read here.
const OLD_PREDICATE_TYPE: &str = "https://model_signing/Digests/v0.1";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<KeyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<Value>,
    #[serde(default)]
    pub tlog_entries: Vec<Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeyIdentifier {
    #[serde(default)]
    pub hint: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub sig: String,
    /// model_signing writes `""`; DSSE: never used for security decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Predicate {
    pub resources: Vec<Resource>,
    pub serialization: Serialization,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub algorithm: String,
    pub digest: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Serialization {
    pub method: String,
    pub hash_type: String,
    pub allow_symlinks: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_paths: Vec<String>,
}

/// DSSE's pre-authentication encoding: what is signed, never the base64 text.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// DSSE verifiers accept standard and URL-safe base64, padded or not.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    STANDARD_ANY.decode(text).or_else(|_| URL_SAFE_ANY.decode(text)).ok()
}

/// Read at most `limit` bytes of `path`; `None` when the file is larger (never allocates past
/// the limit, whatever the file claims).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, SignatureError> {
    let file = std::fs::File::open(path).map_err(|e| SignatureError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| SignatureError::io(path, e))?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Parse a bundle's JSON and check the layers a verifier checks before any signature: the
/// media type, one DSSE envelope with one signature, and the payload type.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Bundle, Vec<u8>, Vec<u8>), SignatureError> {
    let corrupt = |reason: String| SignatureError::corrupt(path, reason);
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("invalid bundle JSON: {e}")))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE && !OLDER_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(corrupt(format!("`mediaType` must be `{BUNDLE_MEDIA_TYPE}`. Given: `{}`", bundle.media_type)));
    }
    let Some(envelope) = &bundle.dsse_envelope else {
        return Err(corrupt("the bundle has no `dsseEnvelope` (a message signature is not a model signature)".into()));
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(corrupt(format!("`payloadType` must be `{PAYLOAD_TYPE}`. Given: `{}`", envelope.payload_type)));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(corrupt(format!(
            "a DSSE envelope in a bundle must have exactly one signature. Given: {}",
            envelope.signatures.len()
        )));
    };
    let payload = decode(&envelope.payload).ok_or_else(|| corrupt("`payload` is not base64".into()))?;
    let sig = decode(&signature.sig).ok_or_else(|| corrupt("`signatures[0].sig` is not base64".into()))?;
    Ok((bundle, payload, sig))
}

/// The OMS predicate of a statement's payload, after checking its types.
pub fn statement(path: &Path, payload: &[u8]) -> Result<(Statement, Predicate), SignatureError> {
    let corrupt = |reason: String| SignatureError::corrupt(path, reason);
    let statement: Statement =
        serde_json::from_slice(payload).map_err(|e| corrupt(format!("invalid in-toto statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(corrupt(format!("`_type` must be `{STATEMENT_TYPE}`. Given: `{}`", statement.statement_type)));
    }
    if statement.predicate_type == OLD_PREDICATE_TYPE {
        return Err(SignatureError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "signed in model_signing's pre-1.0 format (`{OLD_PREDICATE_TYPE}`); sign the model again with \
                 model_signing 1.x or sagestep"
            ),
        });
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(corrupt(format!(
            "`predicateType` must be `{PREDICATE_TYPE}`. Given: `{}`",
            statement.predicate_type
        )));
    }
    let predicate: Predicate = serde_json::from_value(statement.predicate.clone())
        .map_err(|e| corrupt(format!("invalid `predicate`: {e}")))?;
    Ok((statement, predicate))
}
