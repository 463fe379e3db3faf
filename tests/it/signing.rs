//! Interop with Python `model_signing` 1.1.1 (the OpenSSF reference): it verifies what
//! `sagestep model sign` writes, and `sagestep model verify` verifies what it signs, for a
//! model directory and for a single file. The interpreter is `target/python/model-signing`
//! (`scripts/python-xgboost`, run by `scripts/test`, installs it) or
//! `SAGESTEP_MODEL_SIGNING_PYTHON`; without it the tests fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{assert_success, repo, stderr};

/// The `model_signing` command of the pinned environment.
fn model_signing() -> PathBuf {
    let python = std::env::var_os("SAGESTEP_MODEL_SIGNING_PYTHON")
        .map_or_else(|| repo().join("target/python/model-signing/bin/python"), PathBuf::from);
    let cli = python.with_file_name("model_signing");
    let version = Command::new(&python)
        .args(["-c", "import importlib.metadata as m; print(m.version('model-signing'))"])
        .output();
    let found = version
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        found.as_deref(),
        Some("1.1.1"),
        "Python model_signing 1.1.1 is needed at {} (run scripts/python-xgboost, or set SAGESTEP_MODEL_SIGNING_PYTHON)",
        python.display()
    );
    cli
}

fn keys() -> PathBuf {
    repo().join("tests/data/signing/keys")
}

fn sagestep(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sagestep")).args(args.iter().map(|a| a.as_ref())).output().unwrap()
}

fn python(cli: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(cli).args(args.iter().map(|a| a.as_ref())).output().unwrap()
}

/// A model directory as the trainer leaves it, with a nested and a hidden file.
fn model_dir(root: &Path) -> PathBuf {
    let dir = root.join("model");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(dir.join("xgboost-model"), b"{\"learner\": {\"attributes\": {}}}").unwrap();
    std::fs::write(dir.join("code/inference.py"), b"# nested").unwrap();
    std::fs::write(dir.join(".metadata"), b"hidden files are signed too").unwrap();
    dir
}

fn output_text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(output))
}

#[test]
fn python_model_signing_verifies_what_we_sign() {
    let cli = model_signing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let file = tmp.path().join("single/model.tar.gz");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"a tarball's bytes").unwrap();
    for model in [&dir, &file] {
        let signature = sagestep_signature(model);
        assert_success(&sagestep(&[&"model", &"sign", model, &"--private-key", &keys().join("key1.pem")]));
        let verify = |key: &str| {
            python(&cli, &[&"verify", &"key", model, &"--signature", &signature, &"--public_key", &keys().join(key)])
        };
        let ok = verify("key1.pub");
        assert!(ok.status.success(), "{}: {}", model.display(), output_text(&ok));
        assert!(output_text(&ok).contains("Verification succeeded"), "{}", output_text(&ok));
        // Python's verdict has teeth: another key and a changed byte are refused.
        let other = verify("key2.pub");
        assert!(!other.status.success() && output_text(&other).contains("Key mismatch"), "{}", output_text(&other));
        let target = if model.is_dir() { model.join("xgboost-model") } else { model.to_path_buf() };
        let original = std::fs::read(&target).unwrap();
        std::fs::write(&target, [&original[..original.len() - 1], b"X"].concat()).unwrap();
        let tampered = verify("key1.pub");
        assert!(
            !tampered.status.success() && output_text(&tampered).contains("Hash mismatch"),
            "{}",
            output_text(&tampered)
        );
        std::fs::write(&target, original).unwrap();
    }
}

/// Where `sagestep model sign` writes by default: inside a directory, beside a file.
fn sagestep_signature(model: &Path) -> PathBuf {
    if model.is_dir() { model.join("model.sig") } else { model.parent().unwrap().join("model.sig") }
}

#[test]
fn we_verify_what_python_model_signing_signs() {
    let cli = model_signing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let file = tmp.path().join("single/xgboost-model.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{\"learner\": {}}").unwrap();
    for model in [&dir, &file] {
        let signature = sagestep_signature(model);
        let signed = python(
            &cli,
            &[&"sign", &"key", model, &"--signature", &signature, &"--private_key", &keys().join("key2.pem")],
        );
        assert!(signed.status.success(), "{}", output_text(&signed));
        let verify = |key: &str| {
            sagestep(&[&"model", &"verify", model, &"--signature", &signature, &"--public-key", &keys().join(key)])
        };
        let ok = verify("key2.pub");
        assert_success(&ok);
        assert!(output_text(&ok).contains("signature verified"), "{}", output_text(&ok));
        let other = verify("key1.pub");
        assert!(!other.status.success() && stderr(&other).contains("signed by another key"), "{}", stderr(&other));
        if model.is_dir() {
            std::fs::write(model.join("planted.json"), b"{}").unwrap();
            let extra = verify("key2.pub");
            assert!(stderr(&extra).contains("`planted.json` is not signed"), "{}", stderr(&extra));
        }
    }
}
