//! The monitor step through Model Monitor's processing contract: environment variables, a
//! temporary `/opt/ml` tree, the real binary and the real image. pandas and a Python port of
//! Deequ's KLL sketch (tests/python/monitor_oracle.py) are the oracle of the statistics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{MlTree, assert_success, auto_mpg, require_image, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_monitor");
const IMAGE: &str = "sagestep-monitor:latest";
const CSV_HEADER: &str = r#"{"csv": {"header": true, "output_columns_position": "START"}}"#;
const DATA: &str = "/opt/ml/processing/input/data";
const OUTPUT: &str = "/opt/ml/processing/output";
const CONSTRAINTS: &str = "/opt/ml/processing/baseline/constraints/constraints.json";
const STATISTICS: &str = "/opt/ml/processing/baseline/stats/statistics.json";

const HEADER: [&str; 9] =
    ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year", "origin", "car_name"];

/// Auto MPG's rows as CSV fields, `?` as an empty field, floats always with a fraction (as
/// pandas writes them) so that each column has one Deequ type; `edit` may change a row's values.
fn auto_mpg_rows(keep: impl Fn(usize) -> bool, edit: impl Fn(&mut [f64; 8])) -> Vec<Vec<String>> {
    let raw = std::fs::read_to_string(auto_mpg()).unwrap();
    let mut rows = Vec::new();
    for (_, line) in raw.lines().enumerate().filter(|(i, _)| keep(*i)) {
        let (numbers, name) = line.split_once('\t').unwrap();
        let mut values = [0f64; 8];
        for (v, text) in values.iter_mut().zip(numbers.split_whitespace()) {
            *v = if text == "?" { f64::NAN } else { text.parse().unwrap() };
        }
        edit(&mut values);
        let mut fields: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(c, v)| match c {
                _ if v.is_nan() => String::new(),
                1 | 6 | 7 => format!("{v}"),
                _ => format!("{v:?}"),
            })
            .collect();
        fields.push(format!("\"{}\"", name.trim_matches('"')));
        rows.push(fields);
    }
    rows
}

fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = header.join(",") + "\n";
    for row in rows {
        out += &(row.join(",") + "\n");
    }
    out
}

fn auto_mpg_csv(keep: impl Fn(usize) -> bool, edit: impl Fn(&mut [f64; 8])) -> String {
    csv(&HEADER, &auto_mpg_rows(keep, edit))
}

fn all(_: usize) -> bool {
    true
}

fn unchanged(_: &mut [f64; 8]) {}

/// Run the binary with Model Monitor's environment (and nothing of the caller's).
fn run(ml: &MlTree, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("SAGESTEP_ML_ROOT", ml.root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the monitor binary")
}

fn baseline_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("dataset_format", CSV_HEADER),
        ("dataset_source", DATA),
        ("output_path", OUTPUT),
        ("publish_cloudwatch_metrics", "Disabled"),
    ]
}

fn check_env() -> Vec<(&'static str, &'static str)> {
    let mut env = baseline_env();
    env.extend([("baseline_constraints", CONSTRAINTS), ("baseline_statistics", STATISTICS)]);
    env
}

fn json(ml: &MlTree, rel: &str) -> serde_json::Value {
    serde_json::from_str(&ml.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A tree whose data set is `data`, made into a baseline, ready for a check.
fn baselined(data: &str) -> MlTree {
    let ml = MlTree::new();
    ml.write("processing/input/data/auto-mpg.csv", data);
    assert_success(&run(&ml, &baseline_env()));
    ml.write("processing/baseline/constraints/constraints.json", ml.read("processing/output/constraints.json"));
    ml.write("processing/baseline/stats/statistics.json", ml.read("processing/output/statistics.json"));
    std::fs::remove_dir_all(ml.path("processing/output")).unwrap();
    ml
}

fn replace_data(ml: &MlTree, data: &str) {
    std::fs::remove_dir_all(ml.path("processing/input/data")).unwrap();
    ml.write("processing/input/data/new.csv", data);
}

/// An interpreter with pandas (`scripts/python-xgboost` installs one), or `None` after saying
/// why the test is skipped; under `CI=true` a missing one fails the test.
fn pandas_python() -> Option<PathBuf> {
    let found = crate::python_interop::pythons()
        .into_iter()
        .find(|p| Command::new(p).args(["-c", "import pandas"]).output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: no Python with pandas");
        eprintln!("SKIPPED: no Python with pandas (run scripts/python-xgboost)");
    }
    found
}

fn oracle(python: &Path, args: &[&Path]) -> String {
    let out = Command::new(python)
        .arg(crate::util::repo().join("tests/python/monitor_oracle.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "oracle: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn baseline_of_auto_mpg_matches_pandas_and_deequs_sketch() {
    let ml = MlTree::new();
    let data = auto_mpg_csv(all, unchanged);
    ml.write("processing/input/data/auto-mpg.csv", &data);
    let out = run(&ml, &baseline_env());
    assert_success(&out);
    assert!(
        ml.read("output/message").starts_with("Completed: baseline of 398 rows and 9 features"),
        "{}",
        ml.read("output/message")
    );
    let files = ml.files();
    assert!(
        files.contains(&"processing/output/statistics.json".into())
            && files.contains(&"processing/output/constraints.json".into())
    );
    assert!(!files.iter().any(|f| f.contains("violations") || f.contains(".partial")), "{files:?}");

    let stats = json(&ml, "processing/output/statistics.json");
    assert_eq!(stats["version"], 0.0);
    assert_eq!(stats["dataset"]["item_count"], 398);
    let types: Vec<&str> =
        stats["features"].as_array().unwrap().iter().map(|f| f["inferred_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Fractional",
            "Integral",
            "Fractional",
            "Fractional",
            "Fractional",
            "Fractional",
            "Integral",
            "Integral",
            "String"
        ]
    );
    let horsepower = &stats["features"][3]["numerical_statistics"];
    assert_eq!(horsepower["common"]["num_missing"], 6);
    assert_eq!(horsepower["distribution"]["kll"]["sketch"]["parameters"], serde_json::json!({"c": 0.64, "k": 2048.0}));
    assert_eq!(horsepower["distribution"]["kll"]["buckets"].as_array().unwrap().len(), 10);

    let constraints = json(&ml, "processing/output/constraints.json");
    let hp = &constraints["features"][3];
    assert_eq!(hp["inferred_type"], "Fractional");
    // 392/398 complete: the lower bound of the 95% interval, rounded down (Deequ's rule).
    assert_eq!(hp["completeness"], 0.97);
    assert_eq!(hp["num_constraints"]["is_non_negative"], true);
    assert_eq!(constraints["features"][0]["completeness"], 1.0);
    let config = &constraints["monitoring_config"];
    assert_eq!(config["distribution_constraints"]["comparison_method"], "Robust");
    assert_eq!(config["distribution_constraints"]["comparison_threshold"], 0.1);
    assert_eq!(config["datatype_check_threshold"], 1.0);

    let Some(python) = pandas_python() else { return };
    let verdict = oracle(
        &python,
        &[
            Path::new("baseline"),
            &ml.path("processing/input/data/auto-mpg.csv"),
            &ml.path("processing/output/statistics.json"),
        ],
    );
    assert_eq!(verdict.trim(), "ok 9");
}

/// 30,000 values compact the sketch into several levels: the levels must be the ones Deequ's
/// algorithm (ported to Python) keeps, value for value.
#[test]
fn compacted_sketches_match_deequs_levels() {
    let Some(python) = pandas_python() else { return };
    let ml = MlTree::new();
    let mut data = String::from("x,n\n");
    let mut state = 42u64;
    for i in 0..30_000u64 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let x = (state >> 11) as f64 / (1u64 << 53) as f64 * 1000.0 - 200.0;
        data.push_str(&format!("{x:?},{}\n", i % 97));
    }
    ml.write("processing/input/data/big.csv", &data);
    assert_success(&run(&ml, &baseline_env()));
    let stats = json(&ml, "processing/output/statistics.json");
    let levels =
        stats["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"].as_array().unwrap().len();
    assert!(levels >= 4, "{levels} levels");
    let verdict = oracle(
        &python,
        &[
            Path::new("baseline"),
            &ml.path("processing/input/data/big.csv"),
            &ml.path("processing/output/statistics.json"),
        ],
    );
    assert_eq!(verdict.trim(), "ok 2");
}

#[test]
fn the_same_kind_of_data_gives_no_violations() {
    let ml = baselined(&auto_mpg_csv(all, unchanged));
    // Every other car (the odd rows, which include no missing horsepower): the same
    // distributions, half the rows.
    replace_data(&ml, &auto_mpg_csv(|i| i % 2 == 1, unchanged));
    let out = run(&ml, &check_env());
    assert_success(&out);
    let violations = json(&ml, "processing/output/constraint_violations.json");
    assert_eq!(violations, serde_json::json!({"violations": []}), "{}", stderr(&out));
    let summary = json(&ml, "processing/output/monitoring_summary.json");
    assert_eq!(summary["violation_count"], 0);
    assert_eq!(summary["status"], "Completed");
    assert_eq!(summary["item_count"], 199);
    // Every numeric feature was compared, each below the threshold.
    assert_eq!(summary["drift"].as_array().unwrap().len(), 8);
    assert!(ml.read("output/message").starts_with("Completed: no violations in 199 rows"));
    assert_eq!(json(&ml, "processing/output/statistics.json")["dataset"]["item_count"], 199);
}

#[test]
fn a_feature_multiplied_by_three_drifts() {
    let ml = baselined(&auto_mpg_csv(all, unchanged));
    replace_data(&ml, &auto_mpg_csv(all, |v| v[4] *= 3.0));
    let mut env = check_env();
    env.retain(|(k, _)| *k != "publish_cloudwatch_metrics");
    env.extend([
        ("publish_cloudwatch_metrics", "Enabled"),
        ("sagemaker_monitoring_schedule_name", "auto-mpg-schedule"),
        ("end_time", "2026-11-30T16:00:00Z"),
    ]);
    let out = run(&ml, &env);
    assert_success(&out);
    let violations = json(&ml, "processing/output/constraint_violations.json");
    let list = violations["violations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{violations:#}");
    assert_eq!(list[0]["feature_name"], "weight");
    assert_eq!(list[0]["constraint_check_type"], "baseline_drift_check");
    let description = list[0]["description"].as_str().unwrap();
    assert!(
        description.starts_with("Numerical distance: ") && description.ends_with("exceeds numerical threshold: 0.1"),
        "{description}"
    );
    let message = ml.read("output/message");
    assert!(
        message.starts_with("CompletedWithViolations: 1 violation in 398 rows: baseline_drift_check (weight)"),
        "{message}"
    );
    let summary = json(&ml, "processing/output/monitoring_summary.json");
    assert_eq!(summary["violation_count"], 1);
    let weight = summary["drift"].as_array().unwrap().iter().find(|d| d["feature_name"] == "weight").unwrap();
    let distance = weight["distance"].as_f64().unwrap();
    assert!(distance > 0.5, "{distance}");

    let metrics = ml.read("output/metrics/cloudwatch/cloudwatch_metrics.jsonl");
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let drift = lines.iter().find(|l| l["MetricName"] == "feature_baseline_drift_weight").unwrap();
    assert_eq!(drift["Value"].as_f64().unwrap(), distance);
    assert_eq!(drift["Timestamp"], "2026-11-30T16:00:00Z");
    assert_eq!(drift["Dimensions"], serde_json::json!([{"Name": "MonitoringSchedule", "Value": "auto-mpg-schedule"}]));
    let hp = lines.iter().find(|l| l["MetricName"] == "feature_non_null_horsepower").unwrap();
    assert!((hp["Value"].as_f64().unwrap() - 392.0 / 398.0).abs() < 1e-15);
    let data = lines.iter().find(|l| l["MetricName"] == "feature_data_weight").unwrap();
    assert_eq!(data["StatisticValues"]["SampleCount"], 398);

    let Some(python) = pandas_python() else { return };
    let theirs: f64 = oracle(
        &python,
        &[
            Path::new("distance"),
            &ml.path("processing/baseline/stats/statistics.json"),
            &ml.path("processing/output/statistics.json"),
            Path::new("weight"),
        ],
    )
    .trim()
    .parse()
    .unwrap();
    assert!((theirs - distance).abs() < 1e-12, "ours {distance}, oracle {theirs}");
}

#[test]
fn constraint_checks_name_their_feature() {
    let ml = baselined(&auto_mpg_csv(all, unchanged));
    // No acceleration when mpg > 25, origin as text in three rows, no car names, an extra column.
    let mut rows = auto_mpg_rows(all, |v| {
        if v[0] > 25.0 {
            v[5] = f64::NAN;
        }
    });
    for (i, row) in rows.iter_mut().enumerate() {
        row[8] = "x".into();
        if i < 3 {
            row[7] = "one".into();
        }
    }
    let mut header = HEADER;
    header[8] = "extra";
    replace_data(&ml, &csv(&header, &rows));
    let out = run(&ml, &check_env());
    assert_success(&out);
    let violations = json(&ml, "processing/output/constraint_violations.json");
    let found: Vec<(String, String)> = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["feature_name"].as_str().unwrap().into(), v["constraint_check_type"].as_str().unwrap().into()))
        .collect();
    let expect = |f: &str, k: &str| assert!(found.contains(&(f.into(), k.into())), "no {k} for {f} in {found:?}");
    expect("acceleration", "completeness_check");
    expect("origin", "data_type_check");
    expect("car_name", "missing_column_check");
    expect("extra", "extra_column_check");
    assert_eq!(json(&ml, "processing/output/monitoring_summary.json")["status"], "CompletedWithViolations");
}

/// Origin as names: a String column with a domain and category counts in the baseline. Cars
/// from 1976 on come from `mars`: values outside the domain, and categories that drift.
#[test]
fn new_categories_break_the_domain_and_drift() {
    let named = |rows: &mut Vec<Vec<String>>, mars: bool| {
        for row in rows.iter_mut() {
            let name = if mars && row[6].parse::<u32>().unwrap() >= 76 {
                "mars"
            } else {
                ["usa", "europe", "japan"][row[7].parse::<usize>().unwrap() - 1]
            };
            row[7] = name.into();
        }
    };
    let mut rows = auto_mpg_rows(all, unchanged);
    named(&mut rows, false);
    let ml = baselined(&csv(&HEADER, &rows));
    let constraints: serde_json::Value =
        serde_json::from_str(&ml.read("processing/baseline/constraints/constraints.json")).unwrap();
    assert_eq!(
        constraints["features"][7]["string_constraints"]["domains"],
        serde_json::json!(["usa", "japan", "europe"])
    );
    let mut rows = auto_mpg_rows(all, unchanged);
    named(&mut rows, true);
    replace_data(&ml, &csv(&HEADER, &rows));
    assert_success(&run(&ml, &check_env()));
    let violations = json(&ml, "processing/output/constraint_violations.json");
    let origin: Vec<&serde_json::Value> =
        violations["violations"].as_array().unwrap().iter().filter(|v| v["feature_name"] == "origin").collect();
    assert_eq!(origin.len(), 2, "{violations:#}");
    assert_eq!(origin[0]["constraint_check_type"], "categorical_values_check");
    assert_eq!(origin[1]["constraint_check_type"], "baseline_drift_check");
    assert!(origin[1]["description"].as_str().unwrap().starts_with("Categorical distance: "), "{violations:#}");
    let stats = json(&ml, "processing/output/statistics.json");
    let buckets = &stats["features"][7]["string_statistics"]["distribution"]["categorical"]["buckets"];
    let mars = buckets.as_array().unwrap().iter().find(|b| b["value"] == "mars").unwrap()["count"].as_u64().unwrap();
    let in_domain = 398 - mars;
    let expected = format!("Only {}% of data is in the domain", in_domain as f64 / 398.0 * 100.0);
    assert!(origin[0]["description"].as_str().unwrap().contains(&expected), "{violations:#} {expected}");
}

/// The same table as headerless CSV, JSON lines and Parquet (tests/data/parquet/train.parquet,
/// made by pandas from the shared reg_exact fixture) gives the same statistics, column for
/// column: missing values, types, moments (f7 is float32 in Parquet: to 1e-6).
#[test]
fn csv_json_lines_and_parquet_give_the_same_statistics() {
    let text = std::fs::read_to_string(crate::util::shared().join("fixtures/training/reg_exact/train.csv")).unwrap();
    let names: Vec<String> = std::iter::once("label".to_string()).chain((0..8).map(|i| format!("f{i}"))).collect();
    let mut lines = String::new();
    for row in text.lines() {
        let fields: Vec<String> = row
            .split(',')
            .zip(&names)
            .map(|(v, name)| format!("\"{name}\": {}", if v.is_empty() { "null" } else { v }))
            .collect();
        lines += &format!("{{{}}}\n", fields.join(", "));
    }
    let parquet = std::fs::read(crate::util::repo().join("tests/data/parquet/train.parquet")).unwrap();
    let mut all = Vec::new();
    for (format, file, content) in [
        (r#"{"csv": {"header": false}}"#, "train.csv", text.into_bytes()),
        (r#"{"json": {"lines": "true"}}"#, "train.jsonl", lines.into_bytes()),
        (r#"{"parquet": {}}"#, "part-0.parquet", parquet),
    ] {
        let ml = MlTree::new();
        ml.write(&format!("processing/input/data/{file}"), content);
        let mut env = baseline_env();
        env[0].1 = format;
        let out = run(&ml, &env);
        assert_success(&out);
        all.push(json(&ml, "processing/output/statistics.json"));
    }
    assert_eq!(all[0]["features"][0]["name"], "_c0");
    assert_eq!(all[2]["features"][0]["name"], "label");
    // JSON objects' keys come in name order (as Spark infers a JSON schema): `label` last.
    let json_names: Vec<&str> =
        all[1]["features"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(json_names, ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "label"]);
    for other in &all[1..] {
        assert_eq!(other["dataset"], all[0]["dataset"]);
        for (a, name) in all[0]["features"].as_array().unwrap().iter().zip(&names) {
            let b = other["features"].as_array().unwrap().iter().find(|f| f["name"] == name.as_str()).unwrap();
            assert_eq!(a["inferred_type"], b["inferred_type"], "{b:#}");
            let (a, b) = (&a["numerical_statistics"], &b["numerical_statistics"]);
            assert_eq!(a["common"], b["common"]);
            for key in ["mean", "sum", "std_dev", "min", "max"] {
                let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
                assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{key}: {x} vs {y}");
            }
        }
    }
    assert!(all[0]["features"][1]["numerical_statistics"]["common"]["num_missing"].as_u64().unwrap() > 0);
}

/// The checks of the bad inputs the step refuses: exit 1, the reason in /opt/ml/output/message,
/// and no output written.
#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let good = auto_mpg_csv(all, unchanged);
    type Setup = Box<dyn Fn(&MlTree) -> Vec<(&'static str, String)>>;
    let env = |pairs: Vec<(&'static str, &'static str)>| {
        pairs.into_iter().map(|(k, v)| (k, v.to_string())).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "dataset_format not JSON",
            Box::new(move |_| env(vec![("dataset_format", "csv"), ("dataset_source", DATA)])),
            "`dataset_format` must be a JSON object",
        ),
        (
            "dataset_format with a bad option",
            Box::new(move |_| env(vec![("dataset_format", r#"{"csv": {"header": 2}}"#), ("dataset_source", DATA)])),
            "`csv.header` must be true or false, not 2. Given: `{\"csv\": {\"header\": 2}}`",
        ),
        (
            "dataset_format unknown",
            Box::new(move |_| env(vec![("dataset_format", r#"{"avro": {}}"#), ("dataset_source", DATA)])),
            "unknown format `avro`",
        ),
        ("no dataset_format", Box::new(move |_| env(vec![("dataset_source", DATA)])), "`dataset_format` is not set"),
        (
            "no data under dataset_source",
            Box::new(move |ml| {
                std::fs::remove_dir_all(ml.path("processing/input/data")).unwrap();
                std::fs::create_dir_all(ml.path("processing/input/data")).unwrap();
                env(baseline_env())
            }),
            "no data under `dataset_source`",
        ),
        (
            "dataset_source absent",
            Box::new(move |_| {
                env(vec![("dataset_format", CSV_HEADER), ("dataset_source", "/opt/ml/processing/input/nothing")])
            }),
            "input/nothing`: it does not exist",
        ),
        (
            "only a header",
            Box::new(move |ml| {
                replace_data(ml, "a,b\n");
                env(baseline_env())
            }),
            "but no data rows",
        ),
        (
            "baseline constraints missing",
            Box::new(move |_| env(check_env())),
            "the baseline `baseline_constraints` file",
        ),
        (
            "baseline constraints corrupt",
            Box::new(move |ml| {
                ml.write("processing/baseline/constraints/constraints.json", "{\"features\": [");
                ml.write("processing/baseline/stats/statistics.json", "{\"features\": []}");
                env(check_env())
            }),
            "constraints.json` is corrupt",
        ),
        (
            "baseline statistics corrupt",
            Box::new(move |ml| {
                ml.write("processing/baseline/constraints/constraints.json", "{\"features\": []}");
                ml.write("processing/baseline/stats/statistics.json", "{\"features\": 3}");
                env(check_env())
            }),
            "statistics.json` is corrupt",
        ),
        (
            "baseline sketch corrupt",
            Box::new(move |ml| {
                ml.write("processing/baseline/constraints/constraints.json", "{\"features\": []}");
                let levels = vec![vec![1.0]; 70];
                let stats = serde_json::json!({"features": [{"name": "a", "inferred_type": "Integral", "numerical_statistics":
                    {"distribution": {"kll": {"sketch": {"parameters": {"c": 0.64, "k": 2048}, "data": levels}}}}}]});
                ml.write("processing/baseline/stats/statistics.json", stats.to_string());
                env(check_env())
            }),
            "feature `a`: the KLL sketch is corrupt: 70 compactor levels",
        ),
        (
            "column count differs from the baseline",
            Box::new(move |ml| {
                replace_data(ml, "1,2,3\n4,5,6\n");
                let mut e = env(baseline_env());
                e[0].1 = r#"{"csv": {"header": false}}"#.into();
                assert_success(&run(ml, &e.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()));
                ml.write(
                    "processing/baseline/constraints/constraints.json",
                    ml.read("processing/output/constraints.json"),
                );
                ml.write("processing/baseline/stats/statistics.json", ml.read("processing/output/statistics.json"));
                std::fs::remove_dir_all(ml.path("processing/output")).unwrap();
                std::fs::remove_file(ml.path("output/message")).unwrap();
                replace_data(ml, "1,2\n4,5\n");
                let mut e = env(check_env());
                e[0].1 = r#"{"csv": {"header": false}}"#.into();
                e
            }),
            "the data set has 2 columns but the baseline has 3",
        ),
        (
            "a ragged row",
            Box::new(move |ml| {
                replace_data(ml, "a,b\n1,2\n3\n");
                env(baseline_env())
            }),
            "new.csv, line 3: expected 2 fields, found 1",
        ),
        (
            "a Python hook",
            Box::new(move |_| {
                let mut e = env(baseline_env());
                e.push(("record_preprocessor_script", "/opt/ml/processing/code/pre.py".into()));
                e
            }),
            "`record_preprocessor_script` (`/opt/ml/processing/code/pre.py`) is not supported",
        ),
    ];
    for (name, setup, expected) in cases {
        let ml = MlTree::new();
        ml.write("processing/input/data/auto-mpg.csv", &good);
        let env = setup(&ml);
        let out = run(&ml, &env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let message = ml.read("output/message");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(stderr(&out).contains(expected), "{name}: the log says it too");
        assert!(!ml.path("processing/output").exists(), "{name}: outputs written: {:?}", ml.files());
    }
}

/// The same settings read from processingjobconfig.json, and paths under /opt/ml mapped onto
/// the root, as the process engine runs it.
#[test]
fn settings_come_from_processingjobconfig_too() {
    let ml = MlTree::new();
    ml.write("processing/input/data/auto-mpg.csv", auto_mpg_csv(all, unchanged));
    let config = serde_json::json!({"ProcessingJobName": "baseline-job", "Environment": {
        "dataset_format": CSV_HEADER, "dataset_source": DATA, "output_path": OUTPUT, "publish_cloudwatch_metrics": "Disabled"}});
    ml.write("config/processingjobconfig.json", config.to_string());
    assert_success(&run(&ml, &[]));
    assert_eq!(json(&ml, "processing/output/statistics.json")["dataset"]["item_count"], 398);
}

/// The image under `docker run` with the same environment writes the same bytes as the process.
#[test]
fn image_writes_the_same_outputs() {
    require_image(IMAGE);
    let data = auto_mpg_csv(all, unchanged);
    let process = baselined(&data);
    replace_data(&process, &auto_mpg_csv(all, |v| v[4] *= 3.0));
    let image = MlTree::new();
    for rel in [
        "processing/baseline/constraints/constraints.json",
        "processing/baseline/stats/statistics.json",
        "processing/input/data/new.csv",
    ] {
        image.write(rel, process.read(rel));
    }
    assert_success(&run(&process, &check_env()));
    let mount = format!("{}:/opt/ml", image.root().display());
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "none", "-v", &mount]);
    for (k, v) in check_env() {
        cmd.args(["-e", &format!("{k}={v}")]);
    }
    let out = cmd.arg(IMAGE).output().unwrap();
    assert_success(&out);
    for rel in ["statistics.json", "constraints.json", "constraint_violations.json", "monitoring_summary.json"] {
        let rel = format!("processing/output/{rel}");
        assert_eq!(image.read(&rel), process.read(&rel), "{rel}");
    }
    assert_eq!(image.read("output/message"), process.read("output/message"));
    assert!(stderr(&out).contains("\"level\":\"INFO\""), "JSON logs: {}", stderr(&out));

    let bad = MlTree::new();
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "none", "-v", &format!("{}:/opt/ml", bad.root().display())]);
    cmd.args(["-e", "dataset_format={\"csv\": []}", "-e", &format!("dataset_source={DATA}")]);
    let out = cmd.arg(IMAGE).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(bad.read("output/message").contains("the options of `csv` must be an object"));
}

/// The preprocess step's training set, label first and without a header, profiled without its
/// label (SAGESTEP_SKIP_COLUMNS=1), matches its label-free test set column for column.
#[test]
fn skip_columns_drops_the_label() {
    let ml = MlTree::new();
    ml.write("processing/input/data/train.csv", "18,0.5,1\n20,0.25,0\n");
    let mut env = baseline_env();
    env[0].1 = r#"{"csv": {"header": false}}"#;
    env.push(("SAGESTEP_SKIP_COLUMNS", "1"));
    assert_success(&run(&ml, &env));
    let stats = json(&ml, "processing/output/statistics.json");
    let names: Vec<&str> = stats["features"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["_c0", "_c1"]);
    assert_eq!(stats["features"][0]["numerical_statistics"]["sum"], 0.75);
}
