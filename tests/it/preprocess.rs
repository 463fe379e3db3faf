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

/// Exact sizes, `train_test_split`'s way: round(0.7 x 398) = 279 train, round(0.15 x 398) = 60
/// validation, the 59 test rows halved 29/30, as preprocessing.json and the files say.
#[test]
fn auto_mpg_splits_at_exactly_the_ratios() {
    let ml = with_auto_mpg_input();
    assert_success(&ml.run(BIN, &[]));
    let counts = &report(&ml)["rows"];
    let sizes: Vec<u64> = SETS.iter().map(|s| counts[*s].as_u64().unwrap()).collect();
    assert_eq!(sizes, [279, 60, 29, 30]);
    for (set, n) in SETS.iter().zip(&sizes) {
        assert_eq!(ml.read(&format!("processing/{set}/{set}.csv")).lines().count() as u64, *n, "{set}");
    }
    // Other ratios and seeds: still round(ratio x n), whatever the hashes.
    for (seed, ratios) in [("1", ["0.6", "0.2", "0.2"]), ("9", ["0.8", "0.1", "0.1"])] {
        let ml = with_auto_mpg_input();
        let args =
            ["--seed", seed, "--train-ratio", ratios[0], "--validation-ratio", ratios[1], "--test-ratio", ratios[2]];
        assert_success(&ml.run(BIN, &args));
        let r: Vec<f64> = ratios.iter().map(|r| r.parse().unwrap()).collect();
        let (train, validation) = ((r[0] * 398.0_f64).round() as u64, (r[1] * 398.0_f64).round() as u64);
        let test = 398 - train - validation;
        let counts = &report(&ml)["rows"];
        let got: Vec<u64> = SETS.iter().map(|s| counts[*s].as_u64().unwrap()).collect();
        assert_eq!(got, [train, validation, test / 2, test - test / 2], "seed {seed} {ratios:?}");
    }
}

/// A row's set follows its values: the same rows in the same order split the same whatever
/// the files are called, headed, quoted, delimited, compressed or cut into.
#[test]
fn the_split_ignores_file_names_headers_compression_and_cuts() {
    let data = std::fs::read_to_string(auto_mpg()).unwrap();
    let fields = |line: &str| -> Vec<String> {
        let (numbers, name) = line.split_once('\t').unwrap();
        let mut f: Vec<String> = numbers.split_whitespace().map(str::to_string).collect();
        f.push(name.to_string());
        f
    };
    let csv: String = "mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n"
        .to_string()
        + &data.lines().map(|l| fields(l).join(",") + "\n").collect::<String>();
    let lines: Vec<&str> = data.lines().collect();
    let gzip = |text: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    type Files = Vec<(String, Vec<u8>)>;
    let layouts: Vec<(&str, Files)> = vec![
        ("one .data file", vec![("auto-mpg.data".into(), data.clone().into_bytes())]),
        ("a CSV with a header", vec![("auto-mpg.csv".into(), csv.clone().into_bytes())]),
        ("gzip", vec![("x/cars.gz".into(), gzip(&data))]),
        (
            "three files of other sizes",
            [(0, 100), (100, 101), (101, 398)]
                .iter()
                .enumerate()
                .map(|(i, (a, b))| (format!("part-{i}"), (lines[*a..*b].join("\n") + "\n").into_bytes()))
                .collect(),
        ),
    ];
    let mut reference: Option<Vec<String>> = None;
    for (how, files) in layouts {
        let ml = MlTree::new();
        for (name, bytes) in &files {
            ml.write(&format!("processing/input/{name}"), bytes);
        }
        assert_success(&ml.run(BIN, &[]));
        let sets: Vec<String> = SETS.iter().map(|s| ml.read(&format!("processing/{s}/{s}.csv"))).collect();
        match &reference {
            None => reference = Some(sets),
            Some(r) => assert!(*r == sets, "{how}: other sets"),
        }
    }
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

/// The UCI layout, a headered CSV with the columns in another order, and gzip give the same
/// bytes. (Under the same object key: a row's set is drawn from its key and index.)
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
    other.write("processing/input/auto-mpg.data", gz.finish().unwrap());
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
    // Each row is drawn with the ratios' odds: about 80 of 100 train.
    let train = rows(&ml.read("processing/train/train.csv"));
    assert_eq!(report["rows"]["train"], train.len());
    assert!((65..=95).contains(&train.len()), "{} train rows of 100 at 0.8", train.len());
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
        ("empty split", good_row.repeat(3), vec![], "empty: 3 labelled rows at ratios train 0.7"),
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

// --- Several instances ---------------------------------------------------------------------

/// Six Auto-MPG-shaped objects (CSV with and without a header, the UCI layout, gzip) with
/// missing values and a unique label per row (so that a row can be found again by it).
fn objects() -> Vec<(String, Vec<u8>)> {
    let mut state = 3u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut id = 0u64;
    (0..6)
        .map(|k| {
            let uci = k == 2;
            let mut text = String::new();
            if k % 2 == 1 {
                text.push_str("mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name\n");
            }
            for _ in 0..(150 + 40 * k) {
                id += 1;
                let label = format!("{}.{:03}", 9 + id / 100, id % 1000);
                let hp = if next(20) == 0 { "?".to_string() } else { format!("{}.{}", 46 + next(180), next(10)) };
                let origin = if next(30) == 0 { "?".to_string() } else { (1 + next(3)).to_string() };
                let fields = [
                    label,
                    [4, 6, 8][next(3) as usize].to_string(),
                    format!("{}.{}", 68 + next(380), next(10)),
                    hp,
                    (1600 + next(3500)).to_string(),
                    format!("{}.{}", 8 + next(16), next(10)),
                    (70 + next(13)).to_string(),
                    origin,
                ];
                if uci {
                    text.push_str(&format!("{}\t\"car {id}\"\n", fields.join("   ")));
                } else {
                    text.push_str(&format!("{},\"car, {id}\"\n", fields.join(",")));
                }
            }
            let bytes = if k == 4 {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
                gz.finish().unwrap()
            } else {
                text.into_bytes()
            };
            (format!("shard/part-{k}.csv"), bytes)
        })
        .collect()
}

/// One host's /opt/ml: its objects under `processing/input`, and the job's configuration.
pub(crate) fn host_tree(host: usize, world: usize, objects: &[&(String, Vec<u8>)]) -> MlTree {
    let ml = MlTree::new();
    std::fs::create_dir_all(ml.path("processing/input")).unwrap();
    for (key, bytes) in objects {
        ml.write(&format!("processing/input/{key}"), bytes);
    }
    let hosts: Vec<String> = (1..=world).map(|i| format!("\"algo-{i}\"")).collect();
    ml.write(
        "config/resourceconfig.json",
        format!(r#"{{"current_host": "algo-{host}", "hosts": [{}]}}"#, hosts.join(",")),
    );
    ml.write("config/processingjobconfig.json", r#"{"ProcessingJobName": "preprocess-test"}"#);
    ml
}

/// Start hosts `started` (1-based) of a job of `world` as processes on loopback, host `i`
/// with the objects `assignment[i - 1]`; wait for them.
fn run_hosts(
    world: usize,
    assignment: &[Vec<usize>],
    started: &[usize],
    env: &[(&str, &str)],
) -> (Vec<MlTree>, Vec<std::process::Output>) {
    run_hosts_with(&objects(), world, assignment, started, env)
}

/// [`run_hosts`] over the objects `all`.
pub(crate) fn run_hosts_with(
    all: &[(String, Vec<u8>)],
    world: usize,
    assignment: &[Vec<usize>],
    started: &[usize],
    env: &[(&str, &str)],
) -> (Vec<MlTree>, Vec<std::process::Output>) {
    let map: Vec<String> = (1..=world).map(|i| format!("algo-{i}=127.0.0.1:{}", crate::serve::free_port())).collect();
    let trees: Vec<MlTree> = (1..=world)
        .map(|i| host_tree(i, world, &assignment[i - 1].iter().map(|&k| &all[k]).collect::<Vec<_>>()))
        .collect();
    let children: Vec<std::process::Child> = started
        .iter()
        .map(|&i| {
            Command::new(BIN)
                .env("SAGESTEP_ML_ROOT", trees[i - 1].root())
                .env("SAGESTEP_CLUSTER_HOSTS", map.join(","))
                .env("SAGESTEP_CLUSTER_STARTUP_SECS", "20")
                .env("SAGESTEP_COLLECTIVE_TIMEOUT_SECS", "20")
                .env_remove("SAGESTEP_LOG_FORMAT")
                .envs(env.iter().copied())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    (trees, outputs)
}

/// Every output line of one set over the hosts, sorted: the set of rows it holds.
fn set_lines(trees: &[MlTree], set: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for ml in trees {
        for file in ml.files().iter().filter(|f| f.starts_with(&format!("processing/{set}/"))) {
            lines.extend(ml.read(file).lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

/// Files a host wrote (not its input or configuration).
pub(crate) fn written(ml: &MlTree) -> Vec<String> {
    ml.files().into_iter().filter(|f| !f.starts_with("processing/input/") && !f.starts_with("config/")).collect()
}

pub(crate) const SETS: [&str; 4] = ["train", "validation", "test_set_1", "test_set_2"];

/// Acceptance: one instance, and three with two assignments of the objects (one leaving a
/// host without any), give the same rows in each set and the same `preprocessing.json`
/// bytes; each host writes its own part files, the first host the report. The second
/// assignment runs with a tiny median budget: medians found over several counting passes,
/// on merged coarse counts, are the same exact values.
#[test]
fn one_and_three_instances_give_the_same_sets_and_report() {
    let (mut one, out) = run_hosts(1, &[(0..6).collect()], &[1], &[]);
    assert_success(&out[0]);
    let one = one.remove(0);
    let mut expected: Vec<String> = OUTPUTS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(written(&one), expected, "one instance keeps the one-file names");
    let report = one.read("processing/artifacts/preprocessing.json");
    let reference: Vec<Vec<String>> = SETS.iter().map(|s| set_lines(std::slice::from_ref(&one), s)).collect();

    // Objects per host, and the hosts' environment.
    type Assignment<'a> = (Vec<Vec<usize>>, &'a [(&'a str, &'a str)]);
    let assignments: [Assignment<'_>; 2] = [
        (vec![vec![0, 1], vec![2, 3, 4], vec![5]], &[]),
        (vec![vec![], vec![5, 0, 3], vec![1, 2, 4]], &[("SAGESTEP_MEDIAN_BUDGET", "64"), ("SAGESTEP_LOG", "info")]),
    ];
    let two: [Assignment<'_>; 2] =
        [(vec![vec![0, 1, 2], vec![3, 4, 5]], &[]), (vec![vec![4], vec![5, 3, 2, 1, 0]], &[])];
    for (assignment, env) in assignments.into_iter().chain(two) {
        let world = assignment.len();
        let (trees, outputs) = run_hosts(world, &assignment, &(1..=world).collect::<Vec<_>>(), env);
        for (i, out) in outputs.iter().enumerate() {
            assert_success(out);
            let files = written(&trees[i]);
            let host = format!("algo-{}", i + 1);
            let mine = |f: &String| SETS.iter().any(|s| *f == format!("processing/{s}/part-{host}.csv"));
            let report_here = i == 0 && files.contains(&"processing/artifacts/preprocessing.json".to_string());
            assert!(
                files.iter().all(|f| mine(f) || (i == 0 && f.ends_with("preprocessing.json"))),
                "{host}: {files:?}"
            );
            assert_eq!(report_here, i == 0, "{host}: only the first host writes the report");
            if assignment[i].is_empty() {
                assert_eq!(files, ["processing/artifacts/preprocessing.json"], "{host} has no rows to write");
            }
        }
        assert!(
            trees[0].read("processing/artifacts/preprocessing.json") == report,
            "{assignment:?}: preprocessing.json differs from one instance's"
        );
        for (set, lines) in SETS.iter().zip(&reference) {
            assert!(set_lines(&trees, set) == *lines, "{assignment:?}: `{set}` holds other rows");
        }
        if !env.is_empty() {
            assert!(stderr(&outputs[1]).contains("counting again"), "the small budget takes more passes");
        }
    }
}

/// The statistics against pandas on the training rows (found by their unique labels):
/// medians exactly, means and population standard deviations of the imputed columns to
/// 1e-12, the categories and the row count.
#[test]
fn statistics_match_pandas_on_the_training_rows() {
    let Some(python) = crate::python_interop::python3x() else { return };
    let (mut one, out) = run_hosts(1, &[(0..6).collect()], &[1], &[("SAGESTEP_MEDIAN_BUDGET", "64")]);
    assert_success(&out[0]);
    let one = one.remove(0);
    let out = Command::new(python)
        .arg(crate::util::repo().join("tests/python/preprocess_stats.py"))
        .arg(one.path("processing/input/shard"))
        .arg(one.path("processing/train/train.csv"))
        .arg(one.path("processing/artifacts/preprocessing.json"))
        .output()
        .unwrap();
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("OK"), "{text}");
}

/// A host whose input is bad fails with the file, line and column; every other host fails
/// with that host's message; nobody writes an output.
#[test]
fn a_failing_host_fails_every_host_with_its_message() {
    let started = std::time::Instant::now();
    // Host 2 reads objects 1 and 3; line 20 of object 3 is broken.
    let (trees, outputs) = {
        let all = objects();
        let text = String::from_utf8(all[3].1.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[19] = "20.5,8,307,fast,3504,12,70,1,\"broken\"";
        let broken = lines.join("\n") + "\n";
        let map: Vec<String> = (1..=3).map(|i| format!("algo-{i}=127.0.0.1:{}", crate::serve::free_port())).collect();
        let trees: Vec<MlTree> = (1..=3)
            .map(|i| {
                let ml = host_tree(i, 3, &[&all[i - 1]]);
                if i == 2 {
                    ml.write(&format!("processing/input/{}", all[3].0), &broken);
                }
                ml
            })
            .collect();
        let children: Vec<_> = trees
            .iter()
            .map(|ml| {
                Command::new(BIN)
                    .env("SAGESTEP_ML_ROOT", ml.root())
                    .env("SAGESTEP_CLUSTER_HOSTS", map.join(","))
                    .env("SAGESTEP_CLUSTER_STARTUP_SECS", "20")
                    .env("SAGESTEP_COLLECTIVE_TIMEOUT_SECS", "20")
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        (trees, outputs)
    };
    let cause = "part-3.csv, line 20, column `horsepower`: `fast` is not a number";
    for (i, (ml, out)) in trees.iter().zip(&outputs).enumerate() {
        assert_eq!(out.status.code(), Some(1), "algo-{}: {}", i + 1, stderr(out));
        let message = ml.read("output/message");
        assert!(message.contains(cause), "algo-{}: {message}", i + 1);
        if i != 1 {
            assert!(message.starts_with("host `algo-2` failed: "), "algo-{}: {message}", i + 1);
        }
        let left: Vec<String> = written(ml).into_iter().filter(|f| f != "output/message").collect();
        assert!(left.is_empty(), "algo-{} left {left:?}", i + 1);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A host that never comes up: the others fail within the startup timeout, naming it.
#[test]
fn an_absent_host_fails_the_others_within_the_timeout() {
    let started = std::time::Instant::now();
    let assignment = vec![vec![0, 1], vec![2, 3], vec![4, 5]];
    let (trees, outputs) = run_hosts(3, &assignment, &[1, 2], &[("SAGESTEP_CLUSTER_STARTUP_SECS", "3")]);
    for (i, out) in outputs.iter().enumerate() {
        assert!(!out.status.success(), "algo-{}: {}", i + 1, stderr(out));
        let message = trees[i].read("output/message");
        assert!(message.contains("algo-3"), "algo-{}: {message}", i + 1);
        assert_eq!(written(&trees[i]), ["output/message"], "algo-{}", i + 1);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

/// Rows a host wrote, over its part files.
fn rows_written(ml: &MlTree) -> usize {
    let parts = ml.files().into_iter().filter(|f| SETS.iter().any(|s| f.starts_with(&format!("processing/{s}/"))));
    parts.map(|f| ml.read(&f).lines().count()).sum()
}

/// Replicated inputs (`FullyReplicated`: every host holds every object; and a partly
/// replicated mix) on 2 and 3 hosts: the objects are dealt among their holders, so every
/// host reads a share (before, the first host read them all and the others idled), and the
/// sets and `preprocessing.json` are one host's, byte for byte.
#[test]
fn replicated_objects_are_dealt_among_the_hosts_and_give_one_hosts_outputs() {
    let (mut one, out) = run_hosts(1, &[(0..6).collect()], &[1], &[]);
    assert_success(&out[0]);
    let one = one.remove(0);
    let report = one.read("processing/artifacts/preprocessing.json");
    let reference: Vec<Vec<String>> = SETS.iter().map(|s| set_lines(std::slice::from_ref(&one), s)).collect();
    let total = rows_written(&one);
    let all: Vec<usize> = (0..6).collect();
    let assignments: [Vec<Vec<usize>>; 4] = [
        vec![all.clone(), all.clone()],
        vec![all.clone(), all.clone(), all.clone()],
        vec![vec![0, 1, 2, 3], vec![2, 3, 4, 5], vec![0, 5]],
        vec![vec![5, 4], all.clone()],
    ];
    for assignment in assignments {
        let world = assignment.len();
        let (trees, outputs) = run_hosts(world, &assignment, &(1..=world).collect::<Vec<_>>(), &[]);
        for out in &outputs {
            assert_success(out);
        }
        assert!(
            trees[0].read("processing/artifacts/preprocessing.json") == report,
            "{assignment:?}: preprocessing.json differs from one instance's"
        );
        for (set, lines) in SETS.iter().zip(&reference) {
            assert!(set_lines(&trees, set) == *lines, "{assignment:?}: `{set}` holds other rows");
        }
        let shares: Vec<usize> = trees.iter().map(rows_written).collect();
        assert_eq!(shares.iter().sum::<usize>(), total);
        assert!(shares.iter().all(|&n| n * 2 * world >= total), "{assignment:?}: rows per host {shares:?} of {total}");
    }
}
