//! The preprocess step through its SageMaker processing contract.

use std::process::Command;

use crate::util::{MlTree, assert_success, auto_mpg, require_image, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_preprocess");
const IMAGE: &str = "sagestep-preprocess:latest";
const OUTPUTS: [&str; 5] = [
    "processing/artifacts/preprocessing.json",
    "processing/test_set_1/test_set_1.csv",
    "processing/test_set_2/test_set_2.csv",
    "processing/train/train.csv",
    "processing/validation/validation.csv",
];

fn with_auto_mpg_input() -> MlTree {
    let ml = MlTree::new();
    ml.write("processing/input/auto-mpg.data", std::fs::read(auto_mpg()).unwrap());
    ml
}

fn rows(text: &str) -> Vec<Vec<f64>> {
    text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

fn report(ml: &MlTree) -> serde_json::Value {
    serde_json::from_str(&ml.read("processing/artifacts/preprocessing.json")).unwrap()
}

#[test]
fn writes_four_splits_and_the_transform_from_sagemaker_paths() {
    let ml = with_auto_mpg_input();
    assert_success(&ml.run(BIN, &[]));

    let mut expected: Vec<String> = OUTPUTS.iter().map(|s| s.to_string()).collect();
    expected.push("processing/input/auto-mpg.data".into());
    expected.sort();
    assert_eq!(ml.files(), expected, "exactly the outputs, no temporary or message files");

    let train = rows(&ml.read("processing/train/train.csv"));
    let test_2 = rows(&ml.read("processing/test_set_2/test_set_2.csv"));
    let report = report(&ml);
    let features = report["feature_names"].as_array().unwrap().len();
    assert_eq!(features, 9, "6 numeric + origin one-hot (3)");
    assert!(train.iter().all(|r| r.len() == features + 1), "label first, then features");
    assert!(test_2.iter().all(|r| r.len() == features), "test_set_2 has no label");
    // The label is mpg (not cylinders, the seed's bug): values of the raw first column.
    assert!(train.iter().all(|r| (9.0..=47.0).contains(&r[0])));
    assert!(train.iter().any(|r| r[0].fract() != 0.0));

    let counts = &report["rows"];
    assert_eq!(counts["read"], 398);
    assert_eq!(counts["dropped_without_label"], 0);
    let total: u64 =
        ["train", "validation", "test_set_1", "test_set_2"].iter().map(|k| counts[*k].as_u64().unwrap()).sum();
    assert_eq!(total, 398);
    assert_eq!(counts["train"].as_u64().unwrap() as usize, train.len());
    assert_eq!(report["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn same_seed_same_bytes_other_seed_other_shuffle() {
    let (a, b, c) = (with_auto_mpg_input(), with_auto_mpg_input(), with_auto_mpg_input());
    assert_success(&a.run(BIN, &["--seed", "7"]));
    assert_success(&b.run(BIN, &["--seed", "7"]));
    assert_success(&c.run(BIN, &["--seed", "8"]));
    for out in &OUTPUTS[1..] {
        assert_eq!(a.read(out), b.read(out), "{out} differs between two runs with one seed");
    }
    assert_ne!(a.read(OUTPUTS[3]), c.read(OUTPUTS[3]), "another seed gives another shuffle");
}

#[test]
fn statistics_come_from_the_training_split_alone() {
    let ml = with_auto_mpg_input();
    assert_success(&ml.run(BIN, &[]));
    let report = report(&ml);
    let train = rows(&ml.read("processing/train/train.csv"));
    let validation = rows(&ml.read("processing/validation/validation.csv"));

    // Raw weights of all 398 cars (column 5 of the UCI file).
    let raw = std::fs::read_to_string(auto_mpg()).unwrap();
    let all: Vec<f64> = raw.lines().map(|l| l.split_whitespace().nth(4).unwrap().parse().unwrap()).collect();
    let all_mean = all.iter().sum::<f64>() / all.len() as f64;

    for (i, column) in report["columns"].as_array().unwrap().iter().enumerate().take(6) {
        let name = column["name"].as_str().unwrap();
        let scaled: Vec<f64> = train.iter().map(|r| r[1 + i]).collect();
        let mean = scaled.iter().sum::<f64>() / scaled.len() as f64;
        let std = (scaled.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / scaled.len() as f64).sqrt();
        assert!(mean.abs() < 1e-5, "{name}: train features have mean {mean}, not 0");
        assert!((std - 1.0).abs() < 1e-5, "{name}: train features have std {std}, not 1");
        let v_mean = validation.iter().map(|r| r[1 + i]).sum::<f64>() / validation.len() as f64;
        assert!(v_mean.abs() > 1e-4, "{name}: validation rows look fitted too ({v_mean})");
    }
    let weight = &report["columns"][3];
    assert_eq!(weight["name"], "weight");
    let fitted_mean = weight["mean"].as_f64().unwrap();
    assert!((fitted_mean - all_mean).abs() > 1.0, "weight mean {fitted_mean} is the all-rows mean {all_mean}");
    // Undo the scaling on the training rows: back to raw weights whose mean is the fitted one.
    let scale = weight["scale"].as_f64().unwrap();
    let unscaled: Vec<f64> = train.iter().map(|r| r[4] * scale + fitted_mean).collect();
    assert!(unscaled.iter().all(|w| all.iter().any(|a| (a - w).abs() < 0.01)), "train rows are raw rows");
    let unscaled_mean = unscaled.iter().sum::<f64>() / unscaled.len() as f64;
    assert!((unscaled_mean - fitted_mean).abs() < 1e-3);
}

/// The UCI layout, a headered CSV with the columns in another order, and gzip give the same bytes.
#[test]
fn detects_the_layout_and_compression() {
    let uci = with_auto_mpg_input();
    assert_success(&uci.run(BIN, &[]));

    let raw = std::fs::read_to_string(auto_mpg()).unwrap();
    let mut csv =
        String::from("car name,mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin\n");
    for line in raw.lines() {
        let (numbers, name) = line.split_once('\t').unwrap();
        let fields: Vec<&str> = numbers.split_whitespace().collect();
        csv.push_str(&format!("{},{}\n", name, fields.join(",")));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
    let other = MlTree::new();
    // A file name that says nothing of gzip: detection reads the bytes.
    other.write("processing/input/cars.csv", gz.finish().unwrap());
    assert_success(&other.run(BIN, &[]));
    for out in &OUTPUTS[1..] {
        assert_eq!(uci.read(out), other.read(out), "{out}");
    }
    let report = report(&other);
    assert_eq!(report["inputs"][0]["gzip"], true);
    assert_eq!(report["inputs"][0]["header"], true);
    assert_eq!(report["inputs"][0]["dialect"]["delimited"], ",");
}

#[test]
fn another_data_set_works_with_its_schema() {
    let ml = MlTree::new();
    let mut data = String::from("id,price,rooms,area,city\n");
    for i in 0..100 {
        let city = ["paris", "lyon", "nice"][i % 3];
        let area = if i % 10 == 0 { "NA".to_string() } else { (30 + i).to_string() };
        data.push_str(&format!("{i},{},{},{area},{city}\n", 1000 + 7 * i, 1 + i % 4));
    }
    ml.write("processing/input/houses.csv", data);
    let schema = ml.write(
        "schema.json",
        r#"{"columns": ["id", "price", "rooms", "area", "city"], "label": "price",
            "numeric": ["rooms", "area"], "categorical": ["city"], "ignored": ["id"],
            "missing_markers": ["NA"]}"#,
    );
    assert_success(&ml.run(
        BIN,
        &[
            "--schema",
            schema.to_str().unwrap(),
            "--train-ratio",
            "0.8",
            "--validation-ratio",
            "0.1",
            "--test-ratio",
            "0.1",
        ],
    ));
    let report = report(&ml);
    assert_eq!(report["label"], "price");
    assert_eq!(report["feature_names"], serde_json::json!(["rooms", "area", "city=lyon", "city=nice", "city=paris"]));
    assert_eq!(report["rows"]["train"], 80);
    let train = rows(&ml.read("processing/train/train.csv"));
    assert!(train.iter().all(|r| r.len() == 6 && r[0] >= 1000.0));
}

/// Each bad input: exit 1, one message naming file, line and column on stderr and in
/// /opt/ml/output/message, and no output that looks complete.
#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let good_row = "18.0,8,307,130,3504,12,70,1,a\n";
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        ("no input", String::new(), vec![], "processing/input` does not exist"),
        ("empty file", "\n\n".into(), vec![], "data.csv` is empty"),
        (
            "ragged row",
            format!("{good_row}{good_row}18,8,307\n"),
            vec![],
            "data.csv, line 3: expected 9 fields, found 3",
        ),
        (
            "not a number",
            format!("{good_row}18,8,307,fast,3504,12,70,1,b\n"),
            vec![],
            "data.csv, line 2, column `horsepower`: `fast` is not a number",
        ),
        (
            "label not finite",
            format!("NaN,8,307,1,3504,12,70,1,b\n{good_row}"),
            vec![],
            "line 1, column `mpg`: a label must be a finite number",
        ),
        ("empty split", good_row.repeat(3), vec![], "leaves `validation` empty: 3 labelled rows"),
        ("bad ratios", good_row.repeat(30), vec!["--train-ratio", "0.9"], "must be numbers in [0, 1] adding up to 1"),
    ];
    for (case, content, args, expected) in cases {
        let ml = MlTree::new();
        if case != "no input" {
            ml.write("processing/input/data.csv", &content);
        }
        let out = ml.run(BIN, &args);
        assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
        let message = ml.read("output/message");
        assert!(message.contains(expected), "{case}: message {message:?} lacks {expected:?}");
        assert!(stderr(&out).contains(expected), "{case}: stderr lacks the message");
        let leftovers: Vec<String> =
            ml.files().into_iter().filter(|f| !f.starts_with("processing/input") && f != "output/message").collect();
        assert!(leftovers.is_empty(), "{case}: left {leftovers:?}");
    }

    let ml = with_auto_mpg_input();
    let schema = ml.write("schema.json", r#"{"columns": ["mpg", "x"], "label": "mpg", "numeric": ["y"]}"#);
    let out = ml.run(BIN, &["--schema", schema.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(ml.read("output/message").contains("`numeric` names `y`, which is not in `columns`"));
}

#[test]
fn binary_is_statically_linked() {
    let out = Command::new("file").arg("-b").arg(BIN).output().expect("the `file` command");
    let description = String::from_utf8_lossy(&out.stdout);
    assert!(description.contains("statically linked"), "{description}");
}

#[test]
fn image_runs_the_processing_contract() {
    require_image(IMAGE);
    let ml = with_auto_mpg_input();
    // As the issue states it: only the host's processing directory is mounted.
    let mount = format!("{}:/opt/ml/processing", ml.path("processing").display());
    let out = Command::new("docker").args(["run", "--rm", "--network", "none", "-v", &mount, IMAGE]).output().unwrap();
    assert_success(&out);
    for file in OUTPUTS {
        assert!(ml.path(file).is_file(), "{file} missing after docker run");
    }
    // Logs are JSON lines in the image.
    let log = stderr(&out);
    let last = log.lines().last().unwrap();
    let event: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(event["message"], "preprocessing complete");

    // The same bytes as the local process.
    let local = with_auto_mpg_input();
    assert_success(&local.run(BIN, &[]));
    for file in &OUTPUTS[1..] {
        assert_eq!(ml.read(file), local.read(file), "{file}");
    }

    // Failure through the image: exit 1 and the message file.
    let bad = MlTree::new();
    bad.write("processing/input/x.csv", "1,2\n");
    let out = bad.docker_run(IMAGE, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(bad.read("output/message").contains("x.csv, line 1: cannot tell the layout"));

    let size: u64 = String::from_utf8(
        Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", IMAGE]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(size < 20 * 1024 * 1024, "image is {size} bytes");
}
