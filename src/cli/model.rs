//! `sagestep model`: sign a model (a directory or one file) and verify it, in the OpenSSF
//! model signing format that Python's `model_signing sign key` / `verify key` use.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::signing::{self, PrivateKey, PublicKey, Signed, Trust};

#[derive(Debug, clap::Subcommand)]
pub(super) enum ModelCommand {
    /// Sign a model directory (or one file) with an ECDSA P-256 private key: writes model.sig
    #[command(
        after_help = "Example:\n  openssl ecparam -name prime256v1 -genkey -noout -out key.pem\n  openssl ec -in key.pem \
                      -pubout -out key.pub\n  sagestep model sign ./model --private-key key.pem"
    )]
    Sign {
        /// The model: a directory (every file below it is signed) or one file
        model: PathBuf,
        /// PEM private key (SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`), P-256
        #[arg(long)]
        private_key: PathBuf,
        /// Where to write the signature [default: MODEL/model.sig, or beside a single file]
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Verify a model against its signature: every file's digest, and the signature with a key
    #[command(after_help = "Example:\n  sagestep model verify ./model --public-key key.pub")]
    Verify {
        /// The model: a directory or one file
        model: PathBuf,
        /// PEM public key the signature must verify with; without it only digests are checked
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The signature [default: MODEL/model.sig, or beside a single file]
        #[arg(long)]
        signature: Option<PathBuf>,
    },
}

pub(super) fn run(command: ModelCommand) -> Result<ExitCode, String> {
    let text = |e: signing::SignatureError| crate::contract::failure::describe(&e);
    match command {
        ModelCommand::Sign { model, private_key, signature } => {
            let key = PrivateKey::read(&private_key).map_err(text)?;
            let signature = signature.unwrap_or_else(|| signing::default_signature_path(&model));
            let signed = signing::sign(&model, &key, &signature).map_err(text)?;
            println!("signed {} ({}): {}", model.display(), summary(&signed), signature.display());
        }
        ModelCommand::Verify { model, public_key, signature } => {
            let key = public_key.as_deref().map(PublicKey::read).transpose().map_err(text)?;
            let signature = signature.unwrap_or_else(|| signing::default_signature_path(&model));
            let trust = key.as_ref().map_or(Trust::DigestsOnly, Trust::Key);
            let verified = signing::verify(&model, &signature, trust).map_err(text)?;
            println!("verified {} against {}: {}", model.display(), signature.display(), summary(&verified));
            if !verified.signature_checked {
                println!("the signature itself was not checked: give --public-key");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(signed: &Signed) -> String {
    let hint = signed.key_hint.as_deref().map_or_else(|| "none".to_string(), |h| h.to_string());
    format!(
        "{} file(s), root sha256:{}, key hint {hint}{}",
        signed.files.len(),
        crate::data::files::hex(&signed.root),
        if signed.signature_checked { ", signature verified" } else { "" }
    )
}
