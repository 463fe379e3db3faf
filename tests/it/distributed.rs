//! Training across hosts: the real train binary as several hosts (local processes on
//! loopback, and containers on a Docker network), each with its own /opt/ml and its shard of
//! the train channel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::MlTree;

const BIN: &str = env!("CARGO_BIN_EXE_train");

/// Six CSV part files of a regression problem (700 rows each) and a validation file.
pub fn parts() -> (Vec<(String, String)>, String) {
    let mut state = 11u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut row = |noise: bool| {
        let x: Vec<f64> = (0..5).map(|_| next() * 2.0).collect();
        let y = 2.0 * x[0] + x[1] * x[2] + if noise { next() * 0.3 } else { 0.0 };
        std::iter::once(y).chain(x).map(|v| format!("{v}")).collect::<Vec<_>>().join(",") + "\n"
    };
    let files = (0..6).map(|k| (format!("part-{k}.csv"), (0..700).map(|_| row(true)).collect())).collect();
    let validation = (0..300).map(|_| row(false)).collect();
    (files, validation)
}

pub const HYPERPARAMETERS: &str = r#"{"num_round": "20", "max_depth": "5", "eta": "0.3", "tree_method": "hist", "eval_metric": "rmse", "nthread": "1"}"#;

/// One host's /opt/ml: its share of the files, the validation channel, the configuration.
pub fn host_tree(host: usize, world: usize, files: &[&(String, String)], validation: &str, hp: &str) -> MlTree {
    let ml = MlTree::new();
    std::fs::create_dir_all(ml.path("input/data/train")).unwrap();
    for (name, text) in files {
        ml.write(&format!("input/data/train/{name}"), text);
    }
    ml.write("input/data/validation/validation.csv", validation);
    ml.write("input/config/hyperparameters.json", hp);
    ml.write(
        "input/config/inputdataconfig.json",
        r#"{"train": {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"},
            "validation": {"ContentType": "text/csv", "S3DistributionType": "FullyReplicated"}}"#,
    );
    let hosts: Vec<String> = (1..=world).map(|i| format!("\"algo-{i}\"")).collect();
    ml.write(
        "input/config/resourceconfig.json",
        format!(
            r#"{{"current_host": "algo-{host}", "hosts": [{}], "network_interface_name": "eth0"}}"#,
            hosts.join(",")
        ),
    );
    ml
}

/// Run `world` hosts as processes, host `i` training on `assignment[i]` (indices of
/// `parts`); their outputs in rank order.
fn run_hosts(world: usize, assignment: &[Vec<usize>], hp: &str) -> (Vec<MlTree>, Vec<Output>) {
    let (files, validation) = parts();
    let ports: Vec<u16> = (0..world).map(|_| crate::serve::free_port()).collect();
    let map: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("algo-{}=127.0.0.1:{p}", i + 1)).collect();
    let trees: Vec<MlTree> = (0..world)
        .map(|i| {
            let mine: Vec<&(String, String)> = assignment[i].iter().map(|&k| &files[k]).collect();
            host_tree(i + 1, world, &mine, &validation, hp)
        })
        .collect();
    let children: Vec<Child> = trees
        .iter()
        .map(|ml| {
            Command::new(BIN)
                .arg("train")
                .env("SAGESTEP_ML_ROOT", ml.root())
                .env("SAGESTEP_CLUSTER_HOSTS", map.join(","))
                .env("TRAINING_JOB_NAME", "distributed-test")
                .env("SAGESTEP_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    (trees, outputs)
}

/// The last round's validation rmse in a training log.
pub fn last_validation_rmse(stdout: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().expect("a metric line");
    line.rsplit("validation-rmse:").next().unwrap().trim().parse().unwrap()
}

/// Acceptance: the model's bytes are the same for a world of one (the hosts' arithmetic on
/// one host) and for 2, 3 and 4 hosts over three assignments of the files to hosts (one with
/// an empty shard); only the first host writes a model; and the validation metric is within
/// 1% of the one-host model trained with XGBoost's own arithmetic and cuts.
#[test]
fn every_world_size_and_assignment_trains_the_same_model() {
    let (files, validation) = parts();
    let all: Vec<&(String, String)> = files.iter().collect();
    // The reference: one host, the hosts' arithmetic.
    let one = host_tree(1, 1, &all, &validation, HYPERPARAMETERS);
    let out = Command::new(BIN)
        .arg("train")
        .env("SAGESTEP_ML_ROOT", one.root())
        .env("SAGESTEP_DISTRIBUTED", "1")
        .output()
        .unwrap();
    crate::util::assert_success(&out);
    let reference = std::fs::read(one.path("model/xgboost-model")).unwrap();
    // XGBoost's arithmetic on one host.
    let single = host_tree(1, 1, &all, &validation, HYPERPARAMETERS);
    let out_single = Command::new(BIN).arg("train").env("SAGESTEP_ML_ROOT", single.root()).output().unwrap();
    crate::util::assert_success(&out_single);
    let (distributed_rmse, single_rmse) = (last_validation_rmse(&out.stdout), last_validation_rmse(&out_single.stdout));
    let gap = (distributed_rmse - single_rmse).abs() / single_rmse;
    eprintln!("validation rmse: hosts' arithmetic {distributed_rmse}, one host {single_rmse} ({:.4}%)", gap * 100.0);
    assert!(gap < 0.01);

    let assignments: [(usize, Vec<Vec<usize>>); 3] = [
        (2, vec![vec![0, 1, 2], vec![3, 4, 5]]),
        (3, vec![vec![5, 0], vec![1, 2, 3], vec![4]]),
        (4, vec![vec![0], vec![], vec![1, 2, 3, 4], vec![5]]),
    ];
    for (world, assignment) in assignments {
        let (trees, outputs) = run_hosts(world, &assignment, HYPERPARAMETERS);
        for (i, out) in outputs.iter().enumerate() {
            assert!(out.status.success(), "world {world}, host {}: {}", i + 1, crate::util::stderr(out));
        }
        let model = std::fs::read(trees[0].path("model/xgboost-model")).unwrap();
        assert!(model == reference, "world {world} {assignment:?}: the model differs from the world of one's");
        for t in &trees[1..] {
            assert!(!t.path("model/xgboost-model").exists(), "only the first host writes the model");
        }
        assert_eq!(last_validation_rmse(&outputs[0].stdout), distributed_rmse, "world {world}: the same metric");
    }
}

/// Hosts that cannot work together are refused: another configuration on one host fails
/// every host with the reason, and nothing is written.
#[test]
fn hosts_with_another_configuration_are_refused() {
    let (files, validation) = parts();
    let ports: Vec<u16> = (0..2).map(|_| crate::serve::free_port()).collect();
    let map = format!("algo-1=127.0.0.1:{},algo-2=127.0.0.1:{}", ports[0], ports[1]);
    let trees = [
        host_tree(1, 2, &[&files[0]], &validation, HYPERPARAMETERS),
        host_tree(2, 2, &[&files[1]], &validation, &HYPERPARAMETERS.replace("\"20\"", "\"21\"")),
    ];
    let children: Vec<Child> = trees
        .iter()
        .map(|ml| {
            Command::new(BIN)
                .env("SAGESTEP_ML_ROOT", ml.root())
                .env("SAGESTEP_CLUSTER_HOSTS", &map)
                .env("SAGESTEP_CLUSTER_STARTUP_SECS", "20")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    for (ml, child) in trees.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let failure = ml.read("output/failure");
        assert!(failure.contains("another build or configuration"), "{failure}");
        assert!(!ml.path("model/xgboost-model").exists());
    }
    assert!(start.elapsed() < Duration::from_secs(30));
}

/// A Docker network and containers that are removed when the test ends, whatever happens.
pub struct DockerHosts {
    pub network: String,
    pub names: Vec<String>,
}

impl DockerHosts {
    pub fn new(tag: &str, world: usize) -> Self {
        let network = format!("sagestep-test-{tag}-{}", std::process::id());
        let out = Command::new("docker").args(["network", "create", "--internal", &network]).output().unwrap();
        assert!(out.status.success(), "{}", crate::util::stderr(&out));
        let names = (1..=world).map(|i| format!("{network}-algo-{i}")).collect();
        Self { network, names }
    }

    /// Start host `i` (1-based) on its tree.
    pub fn start(&self, i: usize, ml: &Path, env: &[(&str, &str)]) {
        let uid = format!("{}:{}", unsafe_uid(), unsafe_gid());
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--name", &self.names[i - 1], "--network", &self.network]);
        cmd.args(["--network-alias", &format!("algo-{i}"), "--hostname", &format!("algo-{i}"), "--user", &uid]);
        cmd.arg("-v").arg(format!("{}:/opt/ml", ml.display()));
        cmd.args(["-e", "TRAINING_JOB_NAME=docker-test"]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.args(["sagestep-train:latest", "train"]);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", crate::util::stderr(&out));
    }

    pub fn docker(&self, args: &[&str]) {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", crate::util::stderr(&out));
    }

    /// Wait for host `i` to exit; its exit code.
    pub fn wait(&self, i: usize, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &self.names[i - 1]])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut parts = text.split_whitespace();
            if parts.next() == Some("exited") {
                return parts.next().unwrap().parse().unwrap();
            }
            assert!(start.elapsed() < limit, "host {i} still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for DockerHosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
        }
        let _ = Command::new("docker").args(["network", "rm", &self.network]).output();
    }
}

fn unsafe_uid() -> String {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim().to_string()
}

fn unsafe_gid() -> String {
    String::from_utf8_lossy(&Command::new("id").arg("-g").output().unwrap().stdout).trim().to_string()
}

/// A longer training for the fault cases: rounds enough to be stopped in the middle.
fn long_hp(rounds: u32) -> String {
    format!(
        r#"{{"num_round": "{rounds}", "max_depth": "6", "eta": "0.01", "tree_method": "hist", "eval_metric": "rmse", "nthread": "1"}}"#
    )
}

fn docker_trees(world: usize, hp: &str) -> Vec<MlTree> {
    let (files, validation) = parts();
    // Make the shards larger, so rounds take a while: each host gets its files 20 times.
    let big: Vec<(String, String)> = files.iter().map(|(n, t)| (n.clone(), t.repeat(20))).collect();
    (0..world)
        .map(|i| {
            let mine: Vec<&(String, String)> = big.iter().skip(i).step_by(world).collect();
            host_tree(i + 1, world, &mine, &validation, hp)
        })
        .collect()
}

fn assert_failed_cleanly(ml: &MlTree, code: i32, expected: &[&str]) {
    assert_ne!(code, 0, "a survivor must fail");
    let failure = ml.read("output/failure");
    assert!(expected.iter().any(|e| failure.contains(e)), "{failure}");
    assert!(!ml.path("model/xgboost-model").exists(), "no model after a failure");
}

/// Faults with real containers on a Docker network, as SageMaker runs the hosts: a host
/// killed in the middle of training, a host that never starts, a paused host. Survivors fail
/// within the collective's timeout with their failure file written, and no model is written.
#[test]
fn faults_fail_every_host_within_the_timeout() {
    crate::util::require_image("sagestep-train:latest");
    let timeout = [("SAGESTEP_COLLECTIVE_TIMEOUT_SECS", "10"), ("SAGESTEP_CLUSTER_STARTUP_SECS", "15")];

    // A host killed mid-training.
    let trees = docker_trees(3, &long_hp(100_000));
    let hosts = DockerHosts::new("kill", 3);
    for (i, ml) in trees.iter().enumerate() {
        hosts.start(i + 1, ml.root(), &timeout);
    }
    wait_for_rounds(&trees[0], 3);
    let killed = Instant::now();
    hosts.docker(&["kill", &hosts.names[1]]);
    for i in [1, 3] {
        let code = hosts.wait(i, Duration::from_secs(40));
        assert_failed_cleanly(&trees[i - 1], code, &["lost host", "no word from host"]);
    }
    eprintln!("killed host: survivors failed {:?} after the kill", killed.elapsed());
    drop(hosts);

    // A host that never starts.
    let trees = docker_trees(3, &long_hp(50));
    let hosts = DockerHosts::new("absent", 3);
    let started = Instant::now();
    for i in [1, 2] {
        hosts.start(i, trees[i - 1].root(), &timeout);
    }
    for i in [1, 2] {
        let code = hosts.wait(i, Duration::from_secs(60));
        assert_failed_cleanly(
            &trees[i - 1],
            code,
            &["algo-3", "algo-2", "did not connect", "cannot resolve", "lost host"],
        );
    }
    eprintln!("absent host: the others failed after {:?}", started.elapsed());
    drop(hosts);

    // A paused host: no word from it, the timeout fires.
    let trees = docker_trees(3, &long_hp(100_000));
    let hosts = DockerHosts::new("pause", 3);
    for (i, ml) in trees.iter().enumerate() {
        hosts.start(i + 1, ml.root(), &timeout);
    }
    wait_for_rounds(&trees[0], 3);
    let paused = Instant::now();
    hosts.docker(&["pause", &hosts.names[1]]);
    for i in [1, 3] {
        let code = hosts.wait(i, Duration::from_secs(60));
        assert_failed_cleanly(&trees[i - 1], code, &["no word from host", "lost host"]);
    }
    let waited = paused.elapsed();
    eprintln!("paused host: the others failed {waited:?} after the pause");
    assert!(waited < Duration::from_secs(40), "{waited:?}");
    hosts.docker(&["unpause", &hosts.names[1]]);
}

/// The first host starting 20 s after the others: the job waits for it and succeeds. Then
/// SIGTERM on every host in the middle of a training, and the job started again: every host
/// resumes from the first host's checkpoint and the model is that of an uninterrupted run.
#[test]
fn a_late_first_host_joins_and_a_stopped_job_resumes() {
    crate::util::require_image("sagestep-train:latest");
    let trees = docker_trees(3, &long_hp(30));
    let hosts = DockerHosts::new("late", 3);
    for i in [2, 3] {
        hosts.start(i, trees[i - 1].root(), &[]);
    }
    std::thread::sleep(Duration::from_secs(20));
    hosts.start(1, trees[0].root(), &[]);
    for i in 1..=3 {
        assert_eq!(hosts.wait(i, Duration::from_secs(180)), 0, "host {i}: {}", logs(&hosts, i));
    }
    assert!(trees[0].path("model/xgboost-model").is_file());
    drop(hosts);

    // Uninterrupted reference.
    let rounds = 150;
    let whole = docker_trees(3, &long_hp(rounds));
    let hosts = DockerHosts::new("whole", 3);
    for (i, ml) in whole.iter().enumerate() {
        hosts.start(i + 1, ml.root(), &[]);
    }
    for i in 1..=3 {
        assert_eq!(hosts.wait(i, Duration::from_secs(600)), 0, "{}", logs(&hosts, i));
    }
    drop(hosts);

    // Stopped with SIGTERM on every host, then started again.
    let trees = docker_trees(3, &long_hp(rounds));
    let hosts = DockerHosts::new("stop", 3);
    for (i, ml) in trees.iter().enumerate() {
        hosts.start(i + 1, ml.root(), &[]);
    }
    wait_for_rounds(&trees[0], 30);
    let names: Vec<&str> = hosts.names.iter().map(String::as_str).collect();
    let mut args = vec!["stop", "-t", "60"];
    args.extend(&names);
    hosts.docker(&args);
    for i in 1..=3 {
        assert_eq!(hosts.wait(i, Duration::from_secs(60)), 0, "SIGTERM: host {i} exits 0: {}", logs(&hosts, i));
    }
    let checkpoints: Vec<PathBuf> =
        std::fs::read_dir(trees[0].path("checkpoints")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!checkpoints.is_empty(), "the first host checkpointed");
    drop(hosts);
    let hosts = DockerHosts::new("resume", 3);
    for (i, ml) in trees.iter().enumerate() {
        hosts.start(i + 1, ml.root(), &[]);
    }
    for i in 1..=3 {
        assert_eq!(hosts.wait(i, Duration::from_secs(600)), 0, "{}", logs(&hosts, i));
        let first_round = logs_stdout(&hosts, i).lines().next().unwrap_or_default().to_string();
        assert!(!first_round.starts_with("[0]"), "host {i} resumed: {first_round}");
    }
    assert_eq!(
        std::fs::read(trees[0].path("model/xgboost-model")).unwrap(),
        std::fs::read(whole[0].path("model/xgboost-model")).unwrap(),
        "the resumed job ends with the uninterrupted job's model"
    );
}

fn logs(hosts: &DockerHosts, i: usize) -> String {
    let out = Command::new("docker").args(["logs", "--tail", "20", &hosts.names[i - 1]]).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn logs_stdout(hosts: &DockerHosts, i: usize) -> String {
    let out = Command::new("docker").args(["logs", &hosts.names[i - 1]]).stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until the first host has checkpointed `rounds` rounds (a round logged is not enough:
/// its log goes to Docker's stdout, its checkpoints to the mounted tree).
fn wait_for_rounds(ml: &MlTree, rounds: usize) {
    let start = Instant::now();
    loop {
        let done = std::fs::read_dir(ml.path("checkpoints"))
            .map(|d| {
                d.filter_map(|e| {
                    e.ok()?.file_name().to_string_lossy().strip_prefix("xgboost-checkpoint.")?.parse::<usize>().ok()
                })
                .max()
                .unwrap_or(0)
            })
            .unwrap_or(0);
        if done >= rounds {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint of {rounds} rounds");
        std::thread::sleep(Duration::from_millis(100));
    }
}
