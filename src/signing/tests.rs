use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/signing")
}

fn key(n: u8) -> PrivateKey {
    PrivateKey::read(&fixtures().join(format!("keys/key{n}.pem"))).unwrap()
}

fn public(n: u8) -> PublicKey {
    PublicKey::read(&fixtures().join(format!("keys/key{n}.pub"))).unwrap()
}

/// A model directory: two top-level files (one hidden), a nested one and git files.
fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xgboost-model"), b"{\"learner\":{}}").unwrap();
    std::fs::write(dir.path().join(".hidden"), b"kept").unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/b"), b"nested").unwrap();
    std::fs::write(dir.path().join("a.txt"), b"sorted after a/b").unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/HEAD"), b"ignored").unwrap();
    dir
}

fn signed(dir: &Path) -> PathBuf {
    let signature = dir.join(SIGNATURE_FILE);
    sign(dir, &key(1), &signature).unwrap();
    signature
}

fn error_text(result: Result<Signed, SignatureError>) -> String {
    result.expect_err("verification must fail").to_string()
}

/// The payload of a bundle, decoded.
fn payload(signature: &Path) -> serde_json::Value {
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(signature).unwrap()).unwrap();
    let text = bundle::decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[test]
fn the_key_hint_is_model_signings() {
    // Python's hashlib.sha256(public_bytes(PEM, SubjectPublicKeyInfo)).hexdigest() for key1.
    assert_eq!(public(1).hint(), "2a037422f3aa2a88d9f1854100f74f10a073108a3b560e35aa8f4dd8a4ef4b78");
    assert_eq!(key(1).public_key().hint(), public(1).hint());
    let pkcs8 = PrivateKey::read(&fixtures().join("keys/key1.pkcs8.pem")).unwrap();
    assert_eq!(pkcs8.public_key().hint(), public(1).hint());
    assert_eq!(public(1).to_pem(), std::fs::read_to_string(fixtures().join("keys/key1.pub")).unwrap());
}

#[test]
fn keys_other_than_p256_are_refused_by_name() {
    let p384 = PublicKey::read(&fixtures().join("keys/p384.pub")).unwrap_err().to_string();
    assert!(p384.contains("p384.pub") && p384.contains("P-256"), "{p384}");
    let swapped = PrivateKey::read(&fixtures().join("keys/key1.pub")).unwrap_err().to_string();
    assert!(swapped.contains("found `PUBLIC KEY`"), "{swapped}");
    let garbage = PublicKey::from_pem("not a key", "SAGESTEP_MODEL_PUBLIC_KEY").unwrap_err().to_string();
    assert!(garbage.starts_with("key `SAGESTEP_MODEL_PUBLIC_KEY`"), "{garbage}");
}

#[test]
fn pae_is_dsses() {
    // DSSE protocol.md's example.
    assert_eq!(
        bundle::pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

#[test]
fn a_signed_directory_verifies_and_lists_files_in_component_order() {
    let dir = model_dir();
    let signature = signed(dir.path());
    let names: Vec<String> = payload(&signature)["predicate"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    // Hidden files are signed, git paths and the signature are not; `a/b` sorts before `a.txt`.
    assert_eq!(names, [".hidden", "a/b", "a.txt", "xgboost-model"]);
    let verified = verify(dir.path(), &signature, Trust::Key(&public(1))).unwrap();
    assert!(verified.signature_checked);
    assert_eq!(verified.files.len(), 4);
    assert_eq!(verified.key_hint.as_deref(), Some(public(1).hint()));
    // Deterministic (RFC 6979): signing again gives the same bytes.
    let first = std::fs::read(&signature).unwrap();
    sign(dir.path(), &key(1), &signature).unwrap();
    assert_eq!(std::fs::read(&signature).unwrap(), first);
}

#[test]
fn bundles_python_signed_verify() {
    for (model, signature) in
        [("python-dir", "python-dir/model.sig"), ("python-file/model.bin", "python-file/model.sig")]
    {
        let verified = verify(&fixtures().join(model), &fixtures().join(signature), Trust::Key(&public(1)))
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert!(verified.signature_checked);
    }
    let other = error_text(verify(
        &fixtures().join("python-dir"),
        &fixtures().join("python-dir/model.sig"),
        Trust::Key(&public(2)),
    ));
    assert!(other.contains("signed by another key"), "{other}");
}

#[test]
fn a_tampered_byte_an_extra_and_a_missing_file_are_named() {
    let dir = model_dir();
    let signature = signed(dir.path());
    std::fs::write(dir.path().join("a/b"), b"nestee").unwrap();
    let changed = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(changed.contains("`a/b` changed"), "{changed}");
    std::fs::write(dir.path().join("a/b"), b"nested").unwrap();
    std::fs::write(dir.path().join("planted"), b"x").unwrap();
    let extra = error_text(verify(dir.path(), &signature, Trust::DigestsOnly));
    assert!(extra.contains("`planted` is not signed"), "{extra}");
    std::fs::remove_file(dir.path().join("planted")).unwrap();
    std::fs::remove_file(dir.path().join(".hidden")).unwrap();
    let missing = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(missing.contains("`.hidden` is signed but missing"), "{missing}");
}

#[test]
fn another_key_is_refused_by_hint_and_by_signature() {
    let dir = model_dir();
    let signature = signed(dir.path());
    let by_hint = error_text(verify(dir.path(), &signature, Trust::Key(&public(2))));
    assert!(by_hint.contains("signed by another key") && by_hint.contains(public(2).hint()), "{by_hint}");
    // Without the hint, the signature itself refuses.
    let mut bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&signature).unwrap()).unwrap();
    bundle["verificationMaterial"]["publicKey"]["hint"] = "".into();
    std::fs::write(&signature, bundle.to_string()).unwrap();
    let by_signature = error_text(verify(dir.path(), &signature, Trust::Key(&public(2))));
    assert!(by_signature.contains("does not verify with the configured public key"), "{by_signature}");
    verify(dir.path(), &signature, Trust::Key(&public(1))).unwrap();
}

#[test]
fn an_edited_statement_does_not_verify() {
    let dir = model_dir();
    let signature = signed(dir.path());
    // Re-point the manifest at a planted file, keeping it consistent, but not re-signed.
    std::fs::write(dir.path().join("xgboost-model"), b"evil").unwrap();
    let mut statement = payload(&signature);
    let evil = crate::data::files::hex(&manifest::hash_file(&dir.path().join("xgboost-model")).unwrap());
    statement["predicate"]["resources"][3]["digest"] = evil.into();
    let mut bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&signature).unwrap()).unwrap();
    bundle["dsseEnvelope"]["payload"] = bundle::encode(statement.to_string().as_bytes()).into();
    std::fs::write(&signature, bundle.to_string()).unwrap();
    let text = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(text.contains("does not verify"), "{text}");
    // Without a key the inconsistent root is still caught.
    let text = error_text(verify(dir.path(), &signature, Trust::DigestsOnly));
    assert!(text.contains("manifest inconsistent"), "{text}");
}

#[test]
fn a_symlink_in_the_model_is_refused_by_name() {
    let dir = model_dir();
    let signature = signed(dir.path());
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("a/link")).unwrap();
    let text = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(text.contains("a/link") && text.contains("symbolic link"), "{text}");
    let text = sign(dir.path(), &key(1), &signature).unwrap_err().to_string();
    assert!(text.contains("a/link"), "{text}");
}

#[test]
fn corrupt_and_oversized_bundles_are_refused() {
    let dir = model_dir();
    let signature = signed(dir.path());
    let good = std::fs::read(&signature).unwrap();
    std::fs::write(&signature, &good[..good.len() / 2]).unwrap();
    let text = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(text.contains("model.sig` is not a model signature: invalid bundle JSON"), "{text}");
    let file = std::fs::File::create(&signature).unwrap();
    file.set_len(MAX_BUNDLE_BYTES + 1).unwrap();
    let text = error_text(verify(dir.path(), &signature, Trust::Key(&public(1))));
    assert!(text.contains("larger than 16777216 bytes"), "{text}");
    let missing = error_text(verify(dir.path(), &dir.path().join("nothing.sig"), Trust::DigestsOnly));
    assert!(missing.contains("nothing.sig"), "{missing}");
}

/// Sign, edit the bundle's JSON and re-sign it (so only the edited rule can refuse it), verify.
fn edited(
    model: &Path,
    signature: &Path,
    edit: impl Fn(&mut serde_json::Value, &mut serde_json::Value),
) -> Result<Signed, SignatureError> {
    sign(model, &key(1), signature).unwrap();
    let mut bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(signature).unwrap()).unwrap();
    let mut statement = payload(signature);
    edit(&mut bundle, &mut statement);
    let body = statement.to_string();
    let sig = key(1).sign(&bundle::pae(bundle::PAYLOAD_TYPE, body.as_bytes())).unwrap();
    bundle["dsseEnvelope"]["payload"] = bundle::encode(body.as_bytes()).into();
    if bundle["dsseEnvelope"]["signatures"].as_array().unwrap().len() == 1 {
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = bundle::encode(&sig).into();
    }
    std::fs::write(signature, bundle.to_string()).unwrap();
    verify(model, signature, Trust::Key(&public(1)))
}

#[test]
fn each_layer_is_checked() {
    let dir = model_dir();
    type Edit = Box<dyn Fn(&mut serde_json::Value, &mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("`mediaType` must be", Box::new(|b, _| b["mediaType"] = "application/json".into())),
        ("`predicateType` must be", Box::new(|_, s| s["predicateType"] = "https://example.com/x".into())),
        ("pre-1.0 format", Box::new(|_, s| s["predicateType"] = "https://model_signing/Digests/v0.1".into())),
        ("`_type` must be", Box::new(|_, s| s["_type"] = "https://in-toto.io/Statement/v0.1".into())),
        ("only the \"files\" method", Box::new(|_, s| s["predicate"]["serialization"]["method"] = "shards".into())),
        (
            "exactly one signature",
            Box::new(|b, _| {
                let sig = b["dsseEnvelope"]["signatures"][0].clone();
                b["dsseEnvelope"]["signatures"].as_array_mut().unwrap().push(sig);
            }),
        ),
        (
            "`../etc/passwd` is not a relative path",
            Box::new(|_, s| s["predicate"]["resources"][0]["name"] = "../etc/passwd".into()),
        ),
        (
            "listed twice",
            Box::new(|_, s| {
                let first = s["predicate"]["resources"][0].clone();
                s["predicate"]["resources"].as_array_mut().unwrap().push(first);
            }),
        ),
        (
            "ignore path `../x` lies outside",
            Box::new(|_, s| s["predicate"]["serialization"]["ignore_paths"] = serde_json::json!(["../x"])),
        ),
    ];
    for (expected, edit) in cases {
        let text = error_text(edited(dir.path(), &dir.path().join(SIGNATURE_FILE), edit));
        assert!(text.contains(expected), "expected `{expected}` in: {text}");
    }
}

#[test]
fn a_single_file_is_signed_as_dot_and_its_basename_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.tar.gz");
    std::fs::write(&model, b"tarball bytes").unwrap();
    let signature = default_signature_path(&model);
    assert_eq!(signature, dir.path().join("model.sig"));
    sign(&model, &key(1), &signature).unwrap();
    let statement = payload(&signature);
    assert_eq!(statement["predicate"]["resources"][0]["name"], ".");
    assert_eq!(statement["subject"][0]["name"], "model.tar.gz");
    verify(&model, &signature, Trust::Key(&public(1))).unwrap();
    // OMS §6.1.2 names the resource by its basename: accepted too.
    edited(&model, &signature, |_, s| s["predicate"]["resources"][0]["name"] = "model.tar.gz".into()).unwrap();
    let text = error_text(edited(&model, &signature, |_, s| s["predicate"]["resources"][0]["name"] = "other".into()));
    assert!(text.contains("`.` is not signed") && text.contains("`other` is signed but missing"), "{text}");
}
