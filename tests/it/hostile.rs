//! Hostile inputs under a 2 GiB memory limit, each run twice: as a process under `ulimit -v`
//! (an address-space limit, so an allocation the input sized fails at once) and as the image
//! under a 2 GiB cgroup limit (Docker has no address-space ulimit; a step that touched more
//! would be killed, exit 137). Each untrusted size fails as a clear user error with the
//! failure channel written and nothing else left behind, never an abort.

use std::io::Write;
use std::process::{Command, Output};

use crate::util::{MlTree, assert_success, require_image, stderr};

const LIMIT_KB: u64 = 2 << 20;

#[derive(Debug, Clone, Copy)]
enum Step {
    Train,
    Evaluate,
    Preprocess,
}

impl Step {
    fn binary(self) -> &'static str {
        match self {
            Self::Train => env!("CARGO_BIN_EXE_train"),
            Self::Evaluate => env!("CARGO_BIN_EXE_evaluate"),
            Self::Preprocess => env!("CARGO_BIN_EXE_preprocess"),
        }
    }

    fn image(self) -> &'static str {
        match self {
            Self::Train => "sagestep-train:latest",
            Self::Evaluate => "sagestep-evaluate:latest",
            Self::Preprocess => "sagestep-preprocess:latest",
        }
    }

    /// The entry point's arguments: `train` for the training image; none for processing.
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Train => &["train"],
            _ => &[],
        }
    }
}

/// A fresh tree made by `setup`, run through `step` as a limited process and as a limited
/// container; `check` sees each run.
fn both(step: Step, setup: impl Fn(&MlTree), check: impl Fn(&str, &MlTree, &Output)) {
    require_image(step.image());
    let ml = MlTree::new();
    setup(&ml);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(r#"ulimit -v {LIMIT_KB}; exec "$0" "$@""#))
        .arg(step.binary())
        .args(step.args())
        .env("SAGESTEP_ML_ROOT", ml.root())
        .output()
        .unwrap();
    check("process", &ml, &out);

    let ml = MlTree::new();
    setup(&ml);
    let mount = format!("{}:/opt/ml", ml.root().display());
    let memory = format!("{}k", LIMIT_KB);
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--memory", &memory, "--memory-swap", &memory, "-v", &mount])
        .arg(step.image())
        .args(step.args())
        .output()
        .unwrap();
    check("image", &ml, &out);
}

/// A clean user error: exit 1 and `file` (below the tree) holding every one of `words`.
fn assert_refused(how: &str, ml: &MlTree, out: &Output, file: &str, words: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{how}: {}", stderr(out));
    let message = ml.read(file);
    for word in words {
        assert!(message.contains(word), "{how}: `{word}` not in {message}");
    }
}

/// A `model.tar.gz` of one member, `xgboost-model`, of `size` bytes read from `content`.
fn model_tar_gz(size: u64, content: impl std::io::Read) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_path("xgboost-model").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, content).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A `model.tar.gz` whose one member inflates to 1 GiB of zeros (about 1 MB stored).
fn gzip_bomb() -> Vec<u8> {
    model_tar_gz(1 << 30, std::io::Read::take(std::io::repeat(0), 1 << 30))
}

/// `times` copies of `chunk` at `rel` below the tree, written as they go (hundreds of MB).
fn write_repeated(ml: &MlTree, rel: &str, chunk: &[u8], times: usize) {
    let path = ml.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for _ in 0..times {
        file.write_all(chunk).unwrap();
    }
    file.flush().unwrap();
}

#[test]
fn a_gzip_bomb_model_is_refused_by_the_evaluate_step() {
    let setup = |ml: &MlTree| {
        ml.write("processing/model/model.tar.gz", gzip_bomb());
        ml.write("processing/test/test.csv", "1,2,3\n");
    };
    both(Step::Evaluate, setup, |how, ml, out| {
        assert_refused(how, ml, out, "output/message", &["model.tar.gz", "unpacks to more than"]);
        assert!(ml.files().iter().all(|f| !f.starts_with("processing/evaluation")), "{how}: {:?}", ml.files());
    });
}

#[test]
fn a_recordio_length_past_the_limit_is_refused_before_it_is_read() {
    let setup = |ml: &MlTree| {
        // One header claiming a 400 MB record (the largest 29-bit length is 512 MiB), then 8 bytes.
        let mut stream = Vec::new();
        stream.extend_from_slice(&0xCED7_230Au32.to_le_bytes());
        stream.extend_from_slice(&(400u32 << 20).to_le_bytes());
        stream.extend_from_slice(&[0u8; 8]);
        ml.write("input/data/train/a.rec", &stream);
        ml.write(
            "input/config/inputdataconfig.json",
            r#"{"train": {"ContentType": "application/x-recordio-protobuf"}}"#,
        );
        ml.write("input/config/hyperparameters.json", r#"{"num_round": "2"}"#);
    };
    both(Step::Train, setup, |how, ml, out| {
        assert_refused(how, ml, out, "output/failure", &["a.rec", "record 1", "longer than"]);
        assert!(!ml.path("model/xgboost-model").exists());
    });
}

#[test]
fn kfold_refuses_channels_past_its_memory_budget() {
    // 600 MB of CSV rows against a quarter of 2 GiB.
    let setup = |ml: &MlTree| {
        let row = format!("1,{}\n", vec!["0.5"; 100].join(","));
        write_repeated(ml, "input/data/train/train.csv", row.as_bytes(), (600 << 20) / row.len());
        ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/csv"}}"#);
        ml.write("input/config/hyperparameters.json", r#"{"num_round": "2", "_kfold": "2"}"#);
    };
    both(Step::Train, setup, |how, ml, out| {
        assert_refused(how, ml, out, "output/failure", &["holds the channels in memory"]);
        assert!(!ml.path("input/.sagestep-kfold").exists(), "{how}: no work files left");
    });
}

/// Feature index 1,073,741,823 in three lines: training is sparse (a model, within the
/// limit), and evaluating that model on the same rows allocates by entries, not by index.
#[test]
fn a_huge_libsvm_index_trains_and_evaluates_within_the_limit() {
    let rows = "1 1073741823:1\n0 5:2\n1 1073741823:3 5:1\n";
    let train = |ml: &MlTree| {
        ml.write("input/data/train/train.libsvm", rows);
        ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/libsvm"}}"#);
        ml.write(
            "input/config/hyperparameters.json",
            r#"{"num_round": "3", "objective": "binary:logistic", "min_child_weight": "0"}"#,
        );
    };
    let model = std::sync::Mutex::new(Vec::new());
    both(Step::Train, train, |how, ml, out| {
        assert_success(out);
        let bytes = std::fs::read(ml.path("model/xgboost-model")).unwrap();
        assert!(!bytes.is_empty(), "{how}");
        *model.lock().unwrap() = bytes;
    });
    let model = model.into_inner().unwrap();
    let evaluate = |ml: &MlTree| {
        ml.write("processing/model/model.tar.gz", model_tar_gz(model.len() as u64, model.as_slice()));
        ml.write("processing/test/test.libsvm", rows);
    };
    both(Step::Evaluate, evaluate, |how, ml, out| {
        assert_success(out);
        assert!(ml.path("processing/evaluation/evaluation.json").is_file(), "{how}: {:?}", ml.files());
    });
}

/// Gigabytes of blank lines: the preprocess reader sizes nothing from them.
#[test]
fn a_file_of_blank_lines_is_no_data_to_preprocess() {
    let setup = |ml: &MlTree| {
        write_repeated(ml, "processing/input/blank.csv", &vec![b'\n'; 1 << 20], 256);
    };
    both(Step::Preprocess, setup, |how, ml, out| {
        assert_refused(how, ml, out, "output/message", &["blank.csv"]);
        let left: Vec<String> =
            ml.files().into_iter().filter(|f| f != "output/message" && !f.starts_with("processing/input")).collect();
        assert!(left.is_empty(), "{how}: nothing else left behind: {left:?}");
    });
}

/// A link loop in a channel is named in a short message, not walked.
#[test]
fn a_symlink_loop_in_a_channel_fails_naming_it() {
    let setup = |ml: &MlTree| {
        ml.write("input/data/train/train.csv", "1,2\n2,3\n");
        std::os::unix::fs::symlink(".", ml.path("input/data/train/loop")).unwrap();
        ml.write("input/config/inputdataconfig.json", r#"{"train": {"ContentType": "text/csv"}}"#);
        ml.write("input/config/hyperparameters.json", r#"{"num_round": "2"}"#);
    };
    both(Step::Train, setup, |how, ml, out| {
        assert_refused(how, ml, out, "output/failure", &["symbolic link `loop`", "a loop"]);
        assert!(ml.read("output/failure").len() < 400, "{how}");
        assert!(!ml.path("model/xgboost-model").exists());
    });
}
