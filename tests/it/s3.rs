//! Real object storage: the steps and the runner against an S3-compatible server (s3s-fs,
//! from crates.io; `scripts/s3-server` installs it) started on loopback by each test. s3s-fs
//! keeps objects as plain files under its root, so a test sees exactly what was stored.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{MlTree, assert_success, auto_mpg, repo, require_image, stderr};

const SAGESTEP: &str = env!("CARGO_BIN_EXE_sagestep");
const PREPROCESS: &str = env!("CARGO_BIN_EXE_preprocess");
const ACCESS_KEY: &str = "AKIASAGESTEPTEST";
const SECRET_KEY: &str = "sagestep-test-secret";

struct S3Server {
    child: Option<Child>,
    root: tempfile::TempDir,
    port: u16,
}

impl S3Server {
    fn start() -> Self {
        let binary = std::env::var_os("SAGESTEP_S3S_FS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/tools/bin/s3s-fs"));
        assert!(binary.is_file(), "no s3s-fs at {}: run scripts/s3-server (scripts/test does)", binary.display());
        let root = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { child: None, root, port };
        server.spawn(&binary);
        server
    }

    fn spawn(&mut self, binary: &Path) {
        let child = Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).unwrap();
    }

    /// An object as s3s-fs stores it.
    fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A command with this server's endpoint and credentials, and nothing else of AWS's.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ] {
            command.env_remove(var);
        }
        command
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("SAGESTEP_LOG_FORMAT");
        command
    }

    fn sagestep(&self, args: &[&str]) -> Output {
        self.command(SAGESTEP).args(args).output().unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn preprocess_reads_its_input_from_s3_as_a_process_and_in_its_image() {
    let server = S3Server::start();
    server.bucket("raw");
    assert_success(&server.sagestep(&["cp", auto_mpg().to_str().unwrap(), "s3://raw/auto-mpg/part-1.data"]));

    let ml = MlTree::new();
    let output = server
        .command(PREPROCESS)
        .env("SAGESTEP_ML_ROOT", ml.root())
        .args(["--input-data", "s3://raw/auto-mpg/"])
        .output()
        .unwrap();
    assert_success(&output);
    let report: Value = serde_json::from_str(&ml.read("processing/artifacts/preprocessing.json")).unwrap();
    assert_eq!(report["rows"]["read"], 398);
    assert_eq!(
        report["inputs"][0]["path"], "s3://raw/auto-mpg/part-1.data",
        "the report names the object, not the download"
    );
    // The download area is gone; only the outputs remain.
    let mut left: Vec<String> = std::fs::read_dir(ml.path("processing"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["artifacts", "test_set_1", "test_set_2", "train", "validation"]);

    // The FROM-scratch image, on the host's network to reach the server.
    require_image("sagestep-preprocess:0.1.0");
    let ml = MlTree::new();
    let output = Command::new("docker")
        .args(["run", "--rm", "--network", "host", "--user", "0:0"])
        .args([
            "-e",
            &format!("AWS_ENDPOINT_URL={}", server.endpoint()),
            "-e",
            &format!("AWS_ACCESS_KEY_ID={ACCESS_KEY}"),
        ])
        .args([
            "-e",
            &format!("AWS_SECRET_ACCESS_KEY={SECRET_KEY}"),
            "-e",
            "AWS_REGION=us-east-1",
            "-e",
            "AWS_EC2_METADATA_DISABLED=true",
        ])
        .args([
            "-v",
            &format!("{}:/opt/ml", ml.root().display()),
            "sagestep-preprocess:0.1.0",
            "--input-data",
            "s3://raw/auto-mpg",
        ])
        .output()
        .unwrap();
    assert_success(&output);
    assert!(ml.path("processing/train/train.csv").is_file());
}

#[test]
fn input_errors_name_the_bucket_and_key_and_the_kind_of_failure() {
    let mut server = S3Server::start();
    server.bucket("raw");
    assert_success(&server.sagestep(&["cp", auto_mpg().to_str().unwrap(), "s3://raw/auto-mpg.data"]));
    let preprocess = |server: &S3Server, input: &str, env: &[(&str, &str)]| {
        let ml = MlTree::new();
        let mut command = server.command(PREPROCESS);
        command.env("SAGESTEP_ML_ROOT", ml.root()).args(["--input-data", input]);
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let message = std::fs::read_to_string(ml.path("output/message")).unwrap_or_default();
        assert!(!ml.path("processing/train").exists(), "outputs after a failed download");
        (output.status.code(), message)
    };
    let (code, message) = preprocess(&server, "s3://raw/auto-mpg.data", &[("AWS_SECRET_ACCESS_KEY", "wrong")]);
    assert_eq!(code, Some(1));
    assert!(message.contains("s3://raw/auto-mpg.data") && message.contains("bad credentials"), "{message}");
    let (_, message) = preprocess(&server, "s3://raw/auto-mpg.data", &[("AWS_ACCESS_KEY_ID", "AKIANOBODY")]);
    assert!(message.contains("bad credentials"), "{message}");
    let (_, message) = preprocess(&server, "s3://no-such-bucket/data/", &[]);
    assert!(message.contains("s3://no-such-bucket: no such bucket"), "{message}");
    let (_, message) = preprocess(&server, "s3://raw/missing.csv", &[]);
    assert!(message.contains("`s3://raw/missing.csv`: nothing is stored there"), "{message}");
    server.stop();
    let (code, message) = preprocess(&server, "s3://raw/auto-mpg.data", &[]);
    assert_eq!(code, Some(70), "an unreachable store is not the user's fault");
    assert!(message.contains("could not reach the store") && message.contains("s3://raw/"), "{message}");
}

fn max_rss_kib(output: &Output) -> u64 {
    stderr(output)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's report")
}

#[test]
fn a_200_mb_object_round_trips_in_parts_with_bounded_memory() {
    let server = S3Server::start();
    server.bucket("big");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("blob.bin");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..(200 << 20) / 8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.write_all(&state.to_le_bytes()).unwrap();
        }
    }
    let timed = |args: &[&str]| {
        let mut command = server.command("/usr/bin/time");
        command.arg("-v").arg(SAGESTEP).args(args).output().unwrap()
    };
    let upload = timed(&["cp", source.to_str().unwrap(), "s3://big/objects/blob.bin"]);
    assert_success(&upload);
    assert!(stderr(&upload).contains("multipart upload"), "{}", stderr(&upload));
    assert_eq!(std::fs::metadata(server.object("big", "objects/blob.bin")).unwrap().len(), 200 << 20);
    let back = dir.path().join("back");
    let download = timed(&["cp", "s3://big/objects/blob.bin", back.to_str().unwrap()]);
    assert_success(&download);
    let digest = |p: &Path| sagestep::data::files::digest(p).unwrap().sha256;
    assert_eq!(digest(&back.join("blob.bin")), digest(&source));
    // Streaming: each direction stays far below the object's 200 MiB.
    for (what, output) in [("upload", &upload), ("download", &download)] {
        let rss = max_rss_kib(output);
        eprintln!("{what}: peak RSS {rss} KiB");
        assert!(rss < 100 * 1024, "{what} peaked at {rss} KiB");
    }
}

fn run_args<'a>(store: &'a str, definition: &'a str, input: &'a str, work: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        definition,
        "--store",
        store,
        "--work-dir",
        work,
        "--param",
        input,
        "--param",
        "ArtifactRoot=s3://artifacts/auto-mpg",
        "--param",
        "ExecutionRoleArn=arn:aws:iam::000000000000:role/test",
    ]
}

/// A bucket `team` holding the Auto MPG data where `--store s3://team/runs` finds
/// `s3://data/auto-mpg.data` (the store nests the pipeline's buckets below its prefix).
fn team_store(server: &S3Server) -> (tempfile::TempDir, PathBuf) {
    server.bucket("team");
    assert_success(&server.sagestep(&["cp", auto_mpg().to_str().unwrap(), "s3://team/runs/data/auto-mpg.data"]));
    (tempfile::tempdir().unwrap(), repo().join("pipeline.json"))
}

fn team_run_args(definition: &Path, work: &Path) -> Vec<String> {
    run_args(
        "s3://team/runs",
        definition.to_str().unwrap(),
        "InputData=s3://data/auto-mpg.data",
        work.to_str().unwrap(),
    )
    .into_iter()
    .map(str::to_string)
    .collect()
}

#[test]
fn the_whole_pipeline_runs_against_s3_and_leaves_the_objects_sagemaker_would() {
    let server = S3Server::start();
    let (work, definition) = team_store(&server);
    let args = team_run_args(&definition, work.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = server.sagestep(&args);
    assert_success(&output);
    let base = server.root.path().join("team/runs");
    let records: Vec<PathBuf> = std::fs::read_dir(base.join(".sagestep/executions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(records.len(), 1);
    let record: Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert_eq!(record["status"], "Succeeded");
    let id = record["execution_id"].as_str().unwrap();
    let run = base.join("artifacts/auto-mpg").join(id);
    for split in
        ["train/train.csv", "validation/validation.csv", "test_set_1/test_set_1.csv", "test_set_2/test_set_2.csv"]
    {
        assert!(run.join("PreprocessAutoMpgData").join(split).is_file(), "{split}");
    }
    let models = std::fs::read_dir(run.join("HPTuning"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("output/model.tar.gz").is_file())
        .count();
    assert_eq!(models, 3);
    let evaluation: Value =
        serde_json::from_slice(&std::fs::read(run.join("EvaluateTopModel/evaluation/evaluation.json")).unwrap())
            .unwrap();
    // test_set_1's 29 rows (see the pipeline tests): a loose bound.
    assert!(evaluation["regression_metrics"]["mse"]["value"].as_f64().unwrap() < 25.0);
    let predictions = std::fs::read_to_string(run.join("TransformTestSet2/predictions/test_set_2.csv.out")).unwrap();
    let unlabelled = std::fs::read_to_string(run.join("PreprocessAutoMpgData/test_set_2/test_set_2.csv")).unwrap();
    assert_eq!(predictions.lines().count(), unlabelled.lines().count(), "one prediction per unlabelled row");
    assert!(base.join(".sagestep/registry/AutoMpgPackageGroupName/versions/00000001.json").is_file());
    let listed = server.sagestep(&["registry", "list", "--store", "s3://team/runs"]);
    assert!(stdout(&listed).contains("PendingManualApproval") && stdout(&listed).contains(id), "{}", stdout(&listed));

    // A rerun reuses preprocess, tuning, evaluation and the data-quality steps from the S3 cache.
    let output = server.sagestep(&args);
    assert_success(&output);
    assert_eq!(stdout(&output).matches("cache hit").count(), 5, "{}", stdout(&output));

    // --store s3: the definition's URIs as written, records where --records says.
    server.bucket("artifacts");
    let work_dir = work.path().to_str().unwrap();
    let mut direct =
        run_args("s3", definition.to_str().unwrap(), "InputData=s3://team/runs/data/auto-mpg.data", work_dir);
    direct.extend(["--records", "s3://team/records"]);
    let output = server.sagestep(&direct);
    assert_success(&output);
    assert!(server.root.path().join("artifacts/auto-mpg").is_dir());
    let listed = server.sagestep(&["registry", "list", "--store", "s3", "--records", "s3://team/records"]);
    assert_eq!(stdout(&listed).matches("PendingManualApproval").count(), 1, "{}", stdout(&listed));
}

#[test]
fn a_run_with_the_wrong_credentials_or_a_stopped_server_fails_clearly_and_stores_no_partial_outputs() {
    let mut server = S3Server::start();
    let (work, definition) = team_store(&server);
    let args = team_run_args(&definition, work.path());

    let wrong = server.command(SAGESTEP).env("AWS_SECRET_ACCESS_KEY", "wrong").args(&args).output().unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let text = format!("{}{}", stdout(&wrong), stderr(&wrong));
    assert!(text.contains("bad credentials"), "{text}");
    assert!(!server.root.path().join("team/runs/artifacts").exists());

    // Training slow enough to stop the server under it, and no retry policy to wait through.
    let mut slow: Value = serde_json::from_slice(&std::fs::read(&definition).unwrap()).unwrap();
    slow["Steps"][1]["Arguments"]["TrainingJobDefinition"]["StaticHyperParameters"]["num_round"] = "6000".into();
    slow["Steps"][1].as_object_mut().unwrap().remove("RetryPolicies");
    let slow_file = work.path().join("slow.json");
    std::fs::write(&slow_file, slow.to_string()).unwrap();
    let jobs = work.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let args = run_args(
        "s3://team/runs",
        slow_file.to_str().unwrap(),
        "InputData=s3://data/auto-mpg.data",
        jobs.to_str().unwrap(),
    );
    let child = server.command(SAGESTEP).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let training = || {
        std::fs::read_dir(&jobs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|run| std::fs::read_dir(run.ok()?.path()).ok())
            .is_some_and(|jobs| {
                // The job's log exists once its container runs: inputs are in, training is on.
                jobs.filter_map(Result::ok).any(|j| {
                    let name = j.file_name().to_string_lossy().into_owned();
                    name.contains("-003-") && name.ends_with(".log")
                })
            })
    };
    while !training() {
        assert!(started.elapsed() < Duration::from_secs(60), "training never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    eprintln!("{text}");
    assert!(text.contains("HPTuning") && text.contains("could not reach the store"), "{text}");
    // Preprocess finished before the stop; nothing of the tuning jobs was stored.
    let artifacts = server.root.path().join("team/runs/artifacts/auto-mpg");
    let runs: Vec<PathBuf> = std::fs::read_dir(&artifacts).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("PreprocessAutoMpgData/train/train.csv").is_file());
    assert!(!runs[0].join("HPTuning").exists(), "a tuning output was stored");
}
