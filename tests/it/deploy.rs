//! The deploy path (`docker/publish-ecr.sh`) end to end against a real registry on loopback
//! (Debian's docker-registry) and an AWS API stand-in (moto's server: ECR and SageMaker
//! Pipelines): images pushed and pulled back by digest, the pipeline created from pipeline.json,
//! updated, and an execution started with the digests and waited for; each call checked through
//! the AWS CLI.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::serve::free_port;
use crate::util::{assert_success, repo, require_image, stderr};

/// A server child process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    fn start(command: &mut Command, port: u16, what: &str) -> Self {
        let child =
            command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "{what} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(dir: &Path) -> Server {
    let binary = Path::new("/usr/bin/docker-registry");
    assert!(binary.is_file(), "no docker-registry: run scripts/aws-standins (scripts/test does)");
    let port = free_port();
    let config = dir.join("registry.yml");
    let storage = dir.join("registry");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        ),
    )
    .unwrap();
    Server::start(Command::new(binary).arg("serve").arg(&config), port, "docker-registry")
}

pub fn moto() -> Server {
    let binary = std::env::var_os("SAGESTEP_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/python/moto/bin/moto_server"));
    assert!(binary.is_file(), "no moto_server at {}: run scripts/aws-standins (scripts/test does)", binary.display());
    let port = free_port();
    Server::start(Command::new(binary).args(["-H", "127.0.0.1", "-p", &port.to_string()]), port, "moto_server")
}

/// The AWS CLI against the stand-in, with throwaway credentials and no user configuration;
/// what it prints as JSON (null when it prints nothing, as for `s3api create-bucket`).
pub fn aws(moto: &Server, args: &[&str]) -> serde_json::Value {
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let out = aws_env(Command::new("aws"))
        .args(args)
        .args(["--output", "json", "--endpoint-url", &endpoint])
        .output()
        .expect("the aws CLI");
    assert_success(&out);
    if out.stdout.trim_ascii().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
}

pub fn aws_env(mut command: Command) -> Command {
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

fn steps() -> Vec<String> {
    let mut steps: Vec<String> = std::fs::read_dir(repo().join("containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    steps.sort();
    steps
}

#[test]
fn publish_pushes_the_images_and_creates_updates_and_starts_the_pipeline() {
    for step in steps() {
        require_image(&format!("sagestep-{step}:latest"));
    }
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let moto = moto();
    let registry_host = format!("127.0.0.1:{}", registry.port);
    let record = dir.path().join("published.json");
    let role = "arn:aws:iam::123456789012:role/SageMakerExecution";
    let publish = |extra: &[&str]| -> Output {
        let mut command = aws_env(Command::new(repo().join("docker/publish-ecr.sh")));
        command
            .args(["--account", "123456789012", "--region", "us-east-1", "--role-arn", role])
            .args(["--artifact-root", "s3://sagestep-test/run", "--pipeline-name", "sagestep-test"])
            .args(["--endpoint-url", &format!("http://127.0.0.1:{}", moto.port), "--registry", &registry_host])
            .arg("--record")
            .arg(&record)
            .args(extra)
            .output()
            .expect("run publish-ecr.sh")
    };

    // 1. Push and create.
    let created = publish(&[]);
    assert_success(&created);
    assert!(stderr(&created).contains("sagemaker create-pipeline"), "{}", stderr(&created));
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let images = recorded["images"].as_object().unwrap();
    assert_eq!(images.keys().cloned().collect::<Vec<_>>(), steps());
    for (step, reference) in images {
        let reference = reference.as_str().unwrap();
        assert!(reference.starts_with(&format!("{registry_host}/sagestep-{step}@sha256:")), "{reference}");
    }
    let repositories = aws(&moto, &["ecr", "describe-repositories"]);
    let mut names: Vec<String> = repositories["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, steps().iter().map(|s| format!("sagestep-{s}")).collect::<Vec<_>>());
    let described = aws(&moto, &["sagemaker", "describe-pipeline", "--pipeline-name", "sagestep-test"]);
    let definition: serde_json::Value =
        serde_json::from_str(described["PipelineDefinition"].as_str().unwrap()).unwrap();
    let ours: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(definition, ours, "the pipeline is pipeline.json as it is");
    assert_eq!(described["RoleArn"], role);

    // 2. Pull one image back by its digest from the registry.
    let train = images["train"].as_str().unwrap();
    let _ = Command::new("docker")
        .args(["rmi", &format!("{registry_host}/sagestep-train:{}", recorded["version"].as_str().unwrap())])
        .output();
    let pulled = Command::new("docker").args(["pull", "--quiet", train]).output().unwrap();
    assert_success(&pulled);
    let id = |image: &str| {
        let out = Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(id(train), id("sagestep-train:latest"), "the digest pulls the image that was pushed");

    // 3. Update, start with the digests, and wait.
    let started = publish(&["--input-data", "s3://sagestep-test/raw/auto-mpg.data", "--start", "--wait"]);
    assert_success(&started);
    assert!(stderr(&started).contains("sagemaker update-pipeline"), "{}", stderr(&started));
    assert!(stderr(&started).contains("succeeded"), "{}", stderr(&started));
    let executions = aws(&moto, &["sagemaker", "list-pipeline-executions", "--pipeline-name", "sagestep-test"]);
    let summaries = executions["PipelineExecutionSummaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 1, "{executions}");
    let arn = summaries[0]["PipelineExecutionArn"].as_str().unwrap();
    assert_eq!(String::from_utf8_lossy(&started.stdout).trim(), arn);
    let parameters =
        aws(&moto, &["sagemaker", "list-pipeline-parameters-for-execution", "--pipeline-execution-arn", arn]);
    let value = |name: &str| {
        parameters["PipelineParameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Name"] == name)
            .map(|p| p["Value"].as_str().unwrap().to_string())
    };
    assert_eq!(value("TrainImage").as_deref(), Some(train));
    assert_eq!(value("PreprocessImage").as_deref(), images["preprocess"].as_str());
    assert_eq!(value("InputData").as_deref(), Some("s3://sagestep-test/raw/auto-mpg.data"));
    assert_eq!(value("ExecutionRoleArn").as_deref(), Some(role));

    for reference in images.values() {
        let _ = Command::new("docker").args(["rmi", reference.as_str().unwrap()]).output();
    }
}

/// `--dry-run` prints every command; bad arguments fail before any call, naming the argument.
#[test]
fn publish_dry_run_prints_every_command_and_refuses_bad_arguments() {
    let run = |args: &[&str]| Command::new(repo().join("docker/publish-ecr.sh")).args(args).output().unwrap();
    let base =
        ["--region", "eu-west-1", "--role-arn", "arn:aws:iam::123456789012:role/sm", "--artifact-root", "s3://b/x"];
    let out = run(
        &[&["--account", "123456789012", "--dry-run", "--start", "--input-data", "s3://b/raw"][..], &base].concat()
    );
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let version = env!("CARGO_PKG_VERSION");
    for expected in [
        format!(
            "aws --region eu-west-1 ecr get-login-password | docker login --username AWS --password-stdin {registry}"
        ),
        "aws --region eu-west-1 ecr create-repository --repository-name sagestep-train".to_string(),
        format!("docker tag sagestep-serve:{version} {registry}/sagestep-serve:{version}"),
        format!("docker push --quiet {registry}/sagestep-preprocess:{version}"),
        "aws --region eu-west-1 sagemaker create-pipeline --pipeline-name sagestep-auto-mpg".to_string(),
        "--pipeline-definition file://".to_string(),
        "aws --region eu-west-1 sagemaker update-pipeline --pipeline-name sagestep-auto-mpg".to_string(),
        format!("Name=TrainImage,Value={registry}/sagestep-train@sha256:"),
        "Name=ExecutionRoleArn,Value=arn:aws:iam::123456789012:role/sm".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    let out = run(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--account"), "{}", stderr(&out));
    let out = run(&[&["--account", "12"][..], &base].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--account must be a 12-digit"), "{}", stderr(&out));
    let out = run(&[&["--account", "123456789012", "--wait"][..], &base].concat());
    assert!(stderr(&out).contains("--wait needs --start"), "{}", stderr(&out));
}
