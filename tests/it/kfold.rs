//! k-fold cross-validation (`_kfold`, `_num_cv_round`) on every channel format and objective
//! family, as the built-in's users run it: CSV, libsvm with 1-based indices (and the token
//! `8:` with no value that aws/sagemaker-xgboost-container's abalone-multiclass data holds),
//! Parquet and RecordIO-protobuf; regression, binary and multiclass.

use std::process::Command;
use std::sync::Arc;

use crate::util::{MlTree, stderr};
use sagestep::data::recordio;

const BIN: &str = env!("CARGO_BIN_EXE_train");

/// Rows like abalone's: 8 features (the first a small integer), a regression target, a binary
/// and a 4-class label; deterministic.
struct Row {
    features: [f32; 8],
    target: f32,
    binary: f32,
    class: f32,
}

fn rows(n: usize) -> Vec<Row> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| {
            let mut features = [0f32; 8];
            features[0] = (next() * 3.0).floor();
            for f in &mut features[1..] {
                *f = (next() * 1000.0).round() / 1000.0;
            }
            let score = features[1] * 4.0 + features[4] * 2.0 - features[7] + 0.3 * next();
            Row {
                features,
                target: score,
                binary: f32::from(score > 2.5),
                class: (score * 1.2).floor().clamp(0.0, 3.0),
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Format {
    Csv,
    Libsvm,
    Parquet,
    RecordIo,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv",
            Format::Libsvm => "text/libsvm",
            Format::Parquet => "application/x-parquet",
            Format::RecordIo => "application/x-recordio-protobuf",
        }
    }

    /// The rows as one file of this format. libsvm: 1-based indices, and the first row's
    /// last feature written `8:` (no value), as abalone-multiclass's validation file has it.
    fn file(self, rows: &[Row], label: impl Fn(&Row) -> f32) -> Vec<u8> {
        match self {
            Format::Csv => rows
                .iter()
                .map(|r| {
                    let values: Vec<String> = r.features.iter().map(f32::to_string).collect();
                    format!("{},{}\n", label(r), values.join(","))
                })
                .collect::<String>()
                .into_bytes(),
            Format::Libsvm => rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut line = label(r).to_string();
                    for (f, v) in r.features.iter().enumerate() {
                        if i == 0 && f == 7 {
                            line.push_str(" 8:");
                        } else {
                            line.push_str(&format!(" {}:{v}", f + 1));
                        }
                    }
                    line + "\n"
                })
                .collect::<String>()
                .into_bytes(),
            Format::Parquet => parquet_file(rows, label),
            Format::RecordIo => {
                let mut out = Vec::new();
                for r in rows {
                    let mut record = recordio::feature_record(&r.features, &[], &[]);
                    record.extend(recordio::label_record(&[("values", vec![label(r)])]));
                    recordio::write_frame(&record, &mut out);
                }
                out
            }
        }
    }
}

/// A Parquet file: a float label column, then the features.
fn parquet_file(rows: &[Row], label: impl Fn(&Row) -> f32) -> Vec<u8> {
    use parquet::data_type::FloatType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let fields: String = (0..9).map(|c| format!("required float c{c}; ")).collect();
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&format!("message rows {{ {fields}}}")).unwrap());
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut c = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        let values: Vec<f32> = rows.iter().map(|r| if c == 0 { label(r) } else { r.features[c - 1] }).collect();
        column.typed::<FloatType>().write_batch(&values, None, None).unwrap();
        column.close().unwrap();
        c += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}

/// A job over `rows`: the train channel in two files (as abalone's train_0 and train_1), the
/// validation channel in one.
fn job(format: Format, rows: &[Row], label: impl Fn(&Row) -> f32 + Copy, hyperparameters: &str) -> MlTree {
    let ml = MlTree::new();
    let (train, validation) = rows.split_at(rows.len() * 4 / 5);
    let (a, b) = train.split_at(train.len() / 2);
    ml.write("input/data/train/part.train_0", format.file(a, label));
    ml.write("input/data/train/part.train_1", format.file(b, label));
    ml.write("input/data/validation/part.validation", format.file(validation, label));
    let ct = format.content_type();
    ml.write(
        "input/config/inputdataconfig.json",
        format!(r#"{{"train": {{"ContentType": "{ct}"}}, "validation": {{"ContentType": "{ct}"}}}}"#),
    );
    ml.write("input/config/hyperparameters.json", hyperparameters);
    ml
}

/// What the built-in leaves: `xgboost-model-<n>` per fold of every repeat, the mean metric
/// line per repeat (and one overall), `predictions.csv` with every row's label in input
/// order and its held-out prediction (and, classifying, the most frequent class).
fn assert_built_in_outputs(ml: &MlTree, how: &str, labels: &[f32], models: usize, lines: usize, classes: Option<u32>) {
    let out = Command::new(BIN).arg("train").env("SAGESTEP_ML_ROOT", ml.root()).output().unwrap();
    assert!(
        out.status.success(),
        "{how}: {}\n{}",
        stderr(&out),
        std::fs::read_to_string(ml.path("output/failure")).unwrap_or_default()
    );
    let mut names: Vec<String> =
        std::fs::read_dir(ml.path("model")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.sort_by_key(|n| n.rsplit('-').next().unwrap().parse::<usize>().unwrap());
    assert_eq!(names, (0..models).map(|n| format!("xgboost-model-{n}")).collect::<Vec<_>>(), "{how}");
    for name in &names {
        let model = sagestep::model::load(&std::fs::read(ml.path("model").join(name)).unwrap()).unwrap();
        // A fold is a slice of the whole matrix: its model has every feature (1-based libsvm
        // indices 1..8 make 9), as DMatrix.slice keeps num_col.
        let expected = if how.starts_with("Libsvm") || how.starts_with('5') { 9 } else { 8 };
        assert_eq!(model.forest.num_feature, expected, "{how}: {name}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cv: Vec<&str> = stdout.lines().filter(|l| l.starts_with("[3]\t")).collect();
    assert_eq!(cv.len(), lines, "{how}: {stdout}");
    assert!(cv.iter().all(|l| l.contains("\ttrain-") && l.contains("\tvalidation-")), "{how}: {cv:?}");
    let predictions = ml.read("output/data/predictions.csv");
    let rows: Vec<Vec<f64>> = predictions.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), labels.len(), "{how}");
    for (row, &label) in rows.iter().zip(labels) {
        assert!((row[0] - f64::from(label)).abs() < 1e-6, "{how}: labels in input order: {row:?} {label}");
        match classes {
            None => assert_eq!(row.len(), 2, "{how}"),
            Some(k) => {
                assert_eq!(row.len(), 3, "{how}");
                assert!((0.0..=1.0).contains(&row[1]), "{how}: a probability {row:?}");
                assert!(row[2].fract() == 0.0 && row[2] >= 0.0 && row[2] < f64::from(k), "{how}: a class {row:?}");
            }
        }
    }
    assert!(!ml.path("input/.sagestep-kfold").exists(), "{how}: no work files");
}

/// Every format with every objective family: the folds read what plain training reads.
#[test]
fn kfold_trains_every_format_and_objective_family() {
    let data = rows(100);
    type Label = fn(&Row) -> f32;
    let families: [(&str, Label, Option<u32>); 3] = [
        (r#""objective": "reg:squarederror""#, |r| r.target, None),
        (r#""objective": "binary:logistic""#, |r| r.binary, Some(2)),
        (r#""objective": "multi:softprob", "num_class": "4""#, |r| r.class, Some(4)),
    ];
    for format in [Format::Csv, Format::Libsvm, Format::Parquet, Format::RecordIo] {
        for (objective, label, classes) in families {
            let hp = format!(r#"{{"num_round": "3", "max_depth": "3", "_kfold": "3", {objective}}}"#);
            let ml = job(format, &data, label, &hp);
            let labels: Vec<f32> = data.iter().map(label).collect();
            assert_built_in_outputs(&ml, &format!("{format:?} {objective}"), &labels, 3, 1, classes);
        }
    }
}

/// The issue's two runs on an abalone-multiclass equivalent: `multi:softprob`, `num_class=4`,
/// `_kfold=5`, with and without `_num_cv_round=3`, on libsvm with 1-based indices and `8:`.
#[test]
fn kfold_multiclass_libsvm_as_abalone() {
    let data = rows(400);
    let labels: Vec<f32> = data.iter().map(|r| r.class).collect();
    let base = r#""num_round": "3", "max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.7", "objective": "multi:softprob", "num_class": "4", "_kfold": "5""#;
    let ml = job(Format::Libsvm, &data, |r| r.class, &format!("{{{base}}}"));
    assert_built_in_outputs(&ml, "5 folds", &labels, 5, 1, Some(4));
    let ml = job(Format::Libsvm, &data, |r| r.class, &format!(r#"{{{base}, "_num_cv_round": "3"}}"#));
    assert_built_in_outputs(&ml, "5 folds x 3", &labels, 15, 4, Some(4));
}
