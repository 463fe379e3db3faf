//! A training job: CreateTrainingJob on `InstanceCount` hosts. Each host gets its share of
//! every channel (`S3DataDistributionType`) and a `resourceconfig.json` naming it among all
//! hosts. As SageMaker does, every host's `/opt/ml/model` goes into the one `model.tar.gz`
//! (and `/opt/ml/output/data` into `output.tar.gz`); the built-in algorithm and ours write
//! the model on the first host only, so nothing clashes. Metrics are read from the first
//! host's log, where our trainer prints the rounds.

use serde_json::{Value, json};

use std::path::PathBuf;

use super::hosts::{Cluster, Distribution, Host, instance_count};
use super::pipe::PipeChannel;
use super::{JobFailure, Jobs, create_dir, local_path, max_runtime, prefix, required, string_map, text, write_json};
use crate::contract::MlRoot;
use crate::pipeline::engine::Container;
use crate::pipeline::registry::arn;
use crate::storage::Location;

impl Jobs<'_> {
    /// One training job (CreateTrainingJob's request, resolved). Returns DescribeTrainingJob.
    pub fn training(&self, job: &str, args: &Value) -> Result<Value, JobFailure> {
        let count = instance_count(args.pointer("/ResourceConfig/InstanceCount"), "ResourceConfig")?;
        let image = required(args, "/AlgorithmSpecification/TrainingImage", "AlgorithmSpecification")?;
        let output_path = required(args, "/OutputDataConfig/S3OutputPath", "OutputDataConfig")?;
        let cluster = self.cluster(job, count)?;
        let hyperparameters = json!(string_map(args.get("HyperParameters")));
        let (data_config, pipes) = self.stage_channels(&cluster, args)?;
        let instance_type = text(args, "/ResourceConfig/InstanceType").unwrap_or("local");
        for host in &cluster.hosts {
            let ml = MlRoot::new(&host.root);
            write_json(&ml.hyperparameters(), &hyperparameters)?;
            write_json(&ml.input_data_config(), &data_config)?;
            write_json(&ml.resource_config(), &resource_config(&cluster, &host.name, instance_type))?;
        }
        let checkpoint = self.restore_checkpoints(&cluster, args)?;
        let mut env = string_map(args.get("Environment"));
        env.insert(crate::contract::env::TRAINING_JOB_NAME.into(), job.to_string());
        env.insert("TRAINING_JOB_ARN".into(), arn("training-job", job));
        let template = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: None,
            args: vec!["train".into()],
            env,
            ml_root: std::path::PathBuf::new(),
            network_isolation: args.get("EnableNetworkIsolation").and_then(Value::as_bool).unwrap_or(false),
            network: None,
        };
        let feeders = super::pipe::feed(pipes)?;
        let ran = self.run_hosts(&cluster, &template, max_runtime(args), "output/failure");
        drop(feeders);
        let ran = ran?;
        let metrics = read_metrics(args.pointer("/AlgorithmSpecification/MetricDefinitions"), &ran.logs[0])?;
        if let Some((uri, local)) = &checkpoint {
            // Every host syncs its checkpoints to the one S3 URI, also after a failure.
            for host in &cluster.hosts {
                self.storage.put_dir(&local_path(&host.root, local, "/opt/ml")?, uri)?;
            }
        }
        if let Some(failure) = ran.failure {
            return Err(failure);
        }
        let model_uri = self.store_artifacts(&cluster, output_path)?;
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("TrainingJobName".into(), json!(job));
        fields.insert("TrainingJobArn".into(), json!(arn("training-job", job)));
        fields.insert("TrainingJobStatus".into(), json!("Completed"));
        fields.insert("SecondaryStatus".into(), json!("Completed"));
        fields.insert("ModelArtifacts".into(), json!({"S3ModelArtifacts": model_uri}));
        fields.insert("FinalMetricDataList".into(), json!(metrics));
        Ok(described)
    }

    /// Every channel, dealt to the hosts; returns `inputdataconfig.json` and the Pipe mode
    /// channels to feed while the job runs.
    fn stage_channels(&self, cluster: &Cluster, args: &Value) -> Result<(Value, Vec<PipeChannel>), JobFailure> {
        let input_mode = text(args, "/AlgorithmSpecification/TrainingInputMode").unwrap_or("File");
        let mut data_config = serde_json::Map::new();
        let mut pipes = Vec::new();
        for channel in args.get("InputDataConfig").and_then(Value::as_array).into_iter().flatten() {
            let name = required(channel, "/ChannelName", "InputDataConfig")?;
            let what = format!("channel `{name}`");
            let mode = text(channel, "/InputMode").unwrap_or(input_mode);
            let compression = text(channel, "/CompressionType").unwrap_or("None");
            let gzip = match (mode, compression) {
                ("File" | "FastFile" | "Pipe", "None") => false,
                // SageMaker decompresses a Pipe channel as it streams it.
                ("Pipe", "Gzip") => true,
                ("File" | "FastFile", _) => {
                    return Err(JobFailure::client(format!(
                        "{what}: CompressionType `{compression}` is for Pipe mode; File and FastFile channels take None"
                    )));
                }
                ("Pipe", _) => {
                    return Err(JobFailure::client(format!(
                        "{what}: CompressionType `{compression}`: expected None or Gzip"
                    )));
                }
                _ => {
                    return Err(JobFailure::client(format!(
                        "{what}: input mode `{mode}`: expected File, FastFile or Pipe"
                    )));
                }
            };
            let wrapper = text(channel, "/RecordWrapperType").unwrap_or("None");
            if wrapper != "None" {
                return Err(JobFailure::client(format!(
                    "{what}: RecordWrapperType `{wrapper}`: the local runner does not wrap objects in RecordIO; use None"
                )));
            }
            let uri = required(channel, "/DataSource/S3DataSource/S3Uri", &what)?;
            let given = text(channel, "/DataSource/S3DataSource/S3DataDistributionType");
            let distribution = Distribution::parse(given, &what)?;
            // A FastFile channel is a directory of files, as File's is; a Pipe channel's
            // objects are staged beside the host's tree and streamed into it.
            let staged = |host: &Host| -> PathBuf {
                if mode == "Pipe" {
                    self.work.join(&cluster.job).join("pipe").join(&host.name).join(name)
                } else {
                    MlRoot::new(&host.root).channel_dir(name)
                }
            };
            self.stage_input(cluster, uri, distribution, |host| Ok(staged(host))).map_err(|e| prefix(what, e))?;
            if mode == "Pipe" {
                for host in &cluster.hosts {
                    let dir = staged(host);
                    pipes.push(PipeChannel {
                        data_dir: MlRoot::new(&host.root).root().join("input").join("data"),
                        name: name.to_string(),
                        files: staged_files(&dir)?,
                        gzip,
                    });
                }
            }
            let mut entry = json!({
                "TrainingInputMode": mode,
                "S3DistributionType": given.unwrap_or("FullyReplicated"),
                "RecordWrapperType": wrapper,
            });
            if let Some(content_type) = text(channel, "/ContentType") {
                entry["ContentType"] = json!(content_type);
            }
            if gzip {
                entry["CompressionType"] = json!("Gzip");
            }
            data_config.insert(name.to_string(), entry);
        }
        Ok((Value::Object(data_config), pipes))
    }

    /// With a CheckpointConfig: each host's checkpoint directory, holding what earlier runs
    /// stored (as on a managed spot restart). Returns the URI and the container path, which
    /// lies under /opt/ml: mounted with the tree for Docker, mapped into it for processes.
    fn restore_checkpoints(&self, cluster: &Cluster, args: &Value) -> Result<Option<(String, String)>, JobFailure> {
        let Some(uri) = text(args, "/CheckpointConfig/S3Uri") else { return Ok(None) };
        let local = text(args, "/CheckpointConfig/LocalPath").unwrap_or("/opt/ml/checkpoints");
        let earlier = self.storage.list(uri)?;
        for host in &cluster.hosts {
            let dir = local_path(&host.root, local, "/opt/ml")?;
            create_dir(&dir)?;
            write_json(&MlRoot::new(&host.root).checkpoint_config(), &json!({"LocalPath": local, "S3Uri": uri}))?;
            self.storage.download(&earlier, &dir)?;
        }
        Ok(Some((uri.to_string(), local.to_string())))
    }

    /// `model.tar.gz` (and `output.tar.gz` when a host wrote output data) from every host's
    /// directories, stored all or nothing; returns the model's URI.
    fn store_artifacts(&self, cluster: &Cluster, output_path: &str) -> Result<String, JobFailure> {
        let base = format!("{}/{}/output", output_path.trim_end_matches('/'), cluster.job);
        let job_dir = self.work.join(&cluster.job);
        let model_dir = self.merged_dir(cluster, "model".as_ref(), "model-merged")?;
        let model_archive = job_dir.join("model.tar.gz");
        crate::model::archive::pack(&model_dir, &model_archive)
            .map_err(|e| JobFailure::service(format!("packing /opt/ml/model: {e}")))?;
        let model_uri = format!("{base}/model.tar.gz");
        let stored: Vec<Location> = vec![self.storage.put_file(&model_archive, &model_uri)?];
        let data_dir = self.merged_dir(cluster, "output/data".as_ref(), "output-data-merged")?;
        if std::fs::read_dir(&data_dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            let archive = job_dir.join("output.tar.gz");
            let packed =
                crate::model::archive::pack(&data_dir, &archive).map_err(|e| JobFailure::service(e.to_string()));
            if let Err(err) = packed
                .and_then(|()| self.storage.put_file(&archive, &format!("{base}/output.tar.gz")).map_err(Into::into))
            {
                self.storage.remove(&stored);
                return Err(err);
            }
        }
        Ok(model_uri)
    }
}

/// A Pipe channel's staged objects in key order; none for a host dealt nothing.
fn staged_files(dir: &std::path::Path) -> Result<Vec<PathBuf>, JobFailure> {
    use crate::data::{DataError, files};
    match files::list_files_with(dir, files::Links::Skip) {
        Ok(files) => Ok(files),
        Err(DataError::NoFiles { .. }) => Ok(Vec::new()),
        Err(e) => Err(JobFailure::service(format!("listing {}: {e}", dir.display()))),
    }
}

/// A training host's `resourceconfig.json`, as SageMaker writes it for a homogeneous cluster.
fn resource_config(cluster: &Cluster, current: &str, instance_type: &str) -> Value {
    let hosts = cluster.names();
    json!({"current_host": current, "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
           "hosts": hosts, "network_interface_name": "eth0",
           "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}]})
}

/// Each MetricDefinition's last match in the log: SageMaker's final metric values.
pub fn read_metrics(definitions: Option<&Value>, log: &str) -> Result<Vec<Value>, JobFailure> {
    let mut metrics = Vec::new();
    for definition in definitions.and_then(Value::as_array).into_iter().flatten() {
        let name = definition.get("Name").and_then(Value::as_str).unwrap_or_default();
        let pattern = definition.get("Regex").and_then(Value::as_str).unwrap_or_default();
        let regex = regex::Regex::new(pattern)
            .map_err(|e| JobFailure::client(format!("MetricDefinition `{name}`: the regex does not compile: {e}")))?;
        let last = log
            .lines()
            .filter_map(|line| regex.captures(line)?.get(1)?.as_str().parse::<f64>().ok())
            .rfind(|v| v.is_finite());
        if let Some(value) = last {
            let now = crate::pipeline::clock::rfc3339(crate::pipeline::clock::now_secs());
            metrics.push(json!({"MetricName": name, "Value": value, "Timestamp": now}));
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_the_last_match_of_each_definition() {
        let defs = json!([{"Name": "validation:rmse", "Regex": r"\[[0-9]+\].*validation-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"},
                          {"Name": "absent", "Regex": "nothing:([0-9]+)"}]);
        let log = "[0]\ttrain-rmse:9.1\tvalidation-rmse:8.5\n[1]\ttrain-rmse:4.2\tvalidation-rmse:3.25e0\nother\n";
        let metrics = read_metrics(Some(&defs), log).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0]["Value"], 3.25);
        assert!(read_metrics(Some(&json!([{"Name": "x", "Regex": "("}])), "").is_err());
    }
}
