//! Hostile inputs under a 2 GiB address-space limit (`ulimit -v`): each untrusted size fails as
//! a clear user error with the failure channel written and nothing else left behind, never an
//! abort from an allocation the input sized.

use std::io::Write;
use std::process::{Command, Output};

use crate::util::{MlTree, stderr};

/// `program args` under `ulimit -v 2 GiB`, with the job tree as `/opt/ml`.
fn limited(ml: &MlTree, program: &str, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 2097152; exec "$0" "$@""#)
        .arg(program)
        .args(args)
        .env("SAGESTEP_ML_ROOT", ml.root())
        .output()
        .unwrap()
}

/// A `model.tar.gz` whose one member inflates to 1 GiB of zeros (about 1 MB stored).
fn gzip_bomb() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_path("xgboost-model").unwrap();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, std::io::Read::take(std::io::repeat(0), 1 << 30)).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_gzip_bomb_model_is_refused_by_the_evaluate_step() {
    let ml = MlTree::new();
    let model = ml.write("processing/model/model.tar.gz", gzip_bomb());
    let test = ml.write("processing/test/test.csv", "1,2,3\n");
    let out = limited(
        &ml,
        env!("CARGO_BIN_EXE_evaluate"),
        &["--model", model.to_str().unwrap(), "--test-data", test.to_str().unwrap(), "--output-dir", ml.path("eval").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = ml.read("output/message");
    assert!(message.contains("model.tar.gz") && message.contains("unpacks to more than"), "{message}");
    assert!(!ml.path("eval/evaluation.json").exists());
}

#[test]
fn a_recordio_length_past_the_limit_is_refused_before_it_is_read() {
    let ml = MlTree::new();
    // One header claiming a 400 MB record (the largest 29-bit length is 512 MiB), then 8 bytes.
    let mut stream = Vec::new();
    stream.extend_from_slice(&0xCED7_230Au32.to_le_bytes());
    stream.extend_from_slice(&(400u32 << 20).to_le_bytes());
    stream.extend_from_slice(&[0u8; 8]);
    ml.write("input/data/train/a.rec", &stream);
    ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "application/x-recordio-protobuf"}}"#);
    ml.write("input/config/hyperparameters.json", r#"{"num_round": "2"}"#);
    let out = limited(&ml, env!("CARGO_BIN_EXE_train"), &["train"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failure = ml.read("output/failure");
    assert!(failure.contains("a.rec") && failure.contains("record 1") && failure.contains("longer than"), "{failure}");
    assert!(!ml.path("model/xgboost-model").exists());
}

#[test]
fn kfold_refuses_channels_past_its_memory_budget() {
    // 600 MB of CSV rows against a quarter of 2 GiB.
    let ml = MlTree::new();
    let path = ml.path("input/data/train/train.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let row = format!("1,{}\n", vec!["0.5"; 100].join(","));
    for _ in 0..(600 << 20) / row.len() {
        file.write_all(row.as_bytes()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/csv"}}"#);
    ml.write("input/config/hyperparameters.json", r#"{"num_round": "2", "_kfold": "2"}"#);
    let out = limited(&ml, env!("CARGO_BIN_EXE_train"), &["train"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failure = ml.read("output/failure");
    assert!(failure.contains("holds the channels in memory"), "{failure}");
    assert!(!ml.path("input/.sagestep-kfold").exists(), "no work files left");
}
