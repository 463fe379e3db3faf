//! What each fuzz target does with its bytes, shared by the cargo-fuzz targets (`fuzz/`) and
//! the regression test over their findings (`tests/it/fuzz_regressions.rs`), so the two cannot
//! drift. Every function feeds untrusted bytes to a parser through the entry point the steps
//! use, and returns normally for any input: a value or an error, never a panic. An input that
//! panics, hangs or allocates by an untrusted size is a finding.
//!
//! The training readers and config files are read from a file, as the steps read them: the
//! bytes are written to a scratch file of this thread first (under the temp directory).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::contract::MlRoot;
use crate::data::blocks;
use crate::data::labelled;
use crate::data::rows::{ContentType, Layout};

/// A target: its name (the directory of its findings, `tests/data/fuzz/<name>/`) and what it
/// does with one input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "model_load", run: model_load },
    Target { name: "request_decode", run: request_decode },
    Target { name: "train_csv", run: train_csv },
    Target { name: "train_libsvm", run: train_libsvm },
    Target { name: "train_parquet", run: train_parquet },
    Target { name: "train_recordio", run: train_recordio },
    Target { name: "job_config", run: job_config },
    Target { name: "pipeline_definition", run: pipeline_definition },
];

/// The model loader (every format, sniffed from the bytes); a loaded model predicts and is
/// written back as UBJSON.
pub fn model_load(data: &[u8]) {
    use crate::model::{self, Matrix, TreeLimit};
    if let Ok(loaded) = model::load(data) {
        let forest = &loaded.forest;
        let cols = forest.num_feature.clamp(1, 64);
        let rows: Vec<f32> = (0..cols * 3).map(|i| if i % 5 == 0 { f32::NAN } else { i as f32 * 0.37 - 3.0 }).collect();
        let _ = forest.predict(&Matrix::new(&rows, cols), TreeLimit::All);
        let _ = forest.predict(&Matrix::new(&rows, cols), TreeLimit::SageMaker);
        let _ = model::to_ubjson(forest);
    }
}

/// `/invocations` request bodies. Byte 0 picks the content type (CSV, libsvm, JSON, JSON lines,
/// RecordIO-protobuf), byte 1 the model's feature count, byte 2 which features its splits use;
/// the rest is the body.
pub fn request_decode(data: &[u8]) {
    use crate::serving::codec::{Input, decode};
    let [kind, features, stride, body @ ..] = data else { return };
    let input = [Input::Csv, Input::Libsvm, Input::Json, Input::JsonLines, Input::RecordIo][usize::from(*kind) % 5];
    let num_feature = usize::from(*features);
    let stride = usize::from(*stride % 4) + 1;
    let used: Vec<u32> = (0..num_feature as u32).filter(|f| (*f as usize).is_multiple_of(stride)).collect();
    let width = if input.is_sparse() { used.len().max(1) } else { num_feature.max(1) };
    // Small blocks, so that a body is handed on in several.
    let block_values = 7 * width;
    let mut seen = 0usize;
    let mut on_block = |values: &[f32], count: usize| {
        assert_eq!(values.len(), count * width, "a block's rows are `width` wide");
        assert!(count >= 1 && count <= (block_values / width).max(1), "a block holds at most its rows");
        seen += count;
        Ok(())
    };
    if let Ok(count) = decode(input, body, num_feature, &used, block_values, &mut on_block) {
        assert_eq!(count, seen, "every decoded row was handed on");
    }
}

/// A training channel of one file read by both readers: streamed in blocks (the trainer) and
/// as one matrix (evaluate, k-fold), capped as the steps cap it.
fn train_channel(data: &[u8], content_type: ContentType, csv_weights: bool) {
    with_file("data", data, |path| {
        let layout = Layout { content_type, csv_weights };
        let mut rows = 0usize;
        let summary = blocks::for_each_block(path, layout, Ok, |block| {
            for r in 0..block.rows() {
                rows += block.entries(r).count().min(1);
            }
            Ok(())
        });
        if let Ok(summary) = summary {
            assert!(rows <= summary.rows, "entries of rows that were not counted");
        }
        if content_type == ContentType::Csv {
            let _ = blocks::probe(path, layout);
        }
        let _ = labelled::read_limited(path, Some(content_type), csv_weights, 1 << 22);
        if matches!(content_type, ContentType::Csv | ContentType::Libsvm) {
            // Sniffed from the first line, as a channel without a ContentType is read.
            let _ = labelled::read_limited(path, None, csv_weights, 1 << 22);
        }
    });
}

/// `text/csv` training data; byte 0's low bit: `csv_weights`.
pub fn train_csv(data: &[u8]) {
    let [flags, rest @ ..] = data else { return };
    train_channel(rest, ContentType::Csv, flags & 1 == 1);
}

/// `text/libsvm` training data.
pub fn train_libsvm(data: &[u8]) {
    train_channel(data, ContentType::Libsvm, false);
}

/// `application/x-parquet` training data.
pub fn train_parquet(data: &[u8]) {
    train_channel(data, ContentType::Parquet, false);
}

/// `application/x-recordio-protobuf` training data.
pub fn train_recordio(data: &[u8]) {
    train_channel(data, ContentType::RecordIo, false);
}

/// The training job's config files, read as `train` reads them. Byte 0 picks the file:
/// `hyperparameters.json` (then validated and turned into the engine's parameters),
/// `inputdataconfig.json`, `resourceconfig.json`, `checkpointconfig.json`, or the monitor's
/// `dataset_format` setting.
pub fn job_config(data: &[u8]) {
    use crate::training::config;
    let [kind, rest @ ..] = data else { return };
    with_ml_root(|ml| match kind % 5 {
        0 => {
            write(&ml.hyperparameters(), rest);
            let Ok(raw) = config::read_hyperparameters(&ml.hyperparameters()) else { return };
            let Ok(hp) = crate::training::hyperparameters::Hyperparameters::parse(&raw) else { return };
            let _ = hp.unsupported();
            let _ = hp.exact_prune();
            let _ = hp.kfold();
            let _ = hp.objective();
            let _ = hessboost::prelude::TrainingParams::from_xgboost(hp.xgboost_params());
        }
        1 => {
            write(&ml.input_data_config(), rest);
            let channels: Result<BTreeMap<String, config::ChannelConfig>, _> =
                config::read_json(&ml.input_data_config());
            if let Ok(channels) = channels {
                for channel in channels.values() {
                    let _ = channel.content_type.as_deref().map(ContentType::parse);
                }
            }
        }
        2 => {
            write(&ml.resource_config(), rest);
            if let Ok(hosts) = crate::cluster::Hosts::read(&ml.resource_config()) {
                assert!(hosts.rank() < hosts.world());
            }
        }
        3 => {
            write(&ml.checkpoint_config(), rest);
            let checkpoints: Result<config::CheckpointConfig, _> = config::read_json(&ml.checkpoint_config());
            if let Ok(Some(local)) = checkpoints.map(|c| c.local_path) {
                let _ = ml.map(&local);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = crate::monitor::settings::DatasetFormat::parse(text);
            }
        }
    });
}

/// A pipeline definition: parsed, then validated (schema and lint), as `sagestep validate`
/// and `sagestep run` do.
pub fn pipeline_definition(data: &[u8]) {
    use crate::pipeline::{definition::Definition, validate};
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(definition) = Definition::parse("pipeline.json", text) {
        let _ = validate::validate(&definition);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// This thread's scratch directory (made once, left for the next input).
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir = std::env::temp_dir().join(format!("sagestep-fuzz-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("a scratch directory in the temp directory");
                dir
            })
            .clone()
    })
}

fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("the scratch directory is writable");
    }
    std::fs::write(path, data).expect("the scratch directory is writable");
}

/// `data` as the file `name` in the scratch directory.
fn with_file(name: &str, data: &[u8], f: impl FnOnce(&Path)) {
    let path = scratch().join(name);
    write(&path, data);
    f(&path);
    let _ = std::fs::remove_file(&path);
}

/// An empty `/opt/ml` tree in the scratch directory.
fn with_ml_root(f: impl FnOnce(&MlRoot)) {
    let root = scratch().join("ml");
    let _ = std::fs::remove_dir_all(&root);
    f(&MlRoot::new(&root));
}
