//! A processing job: CreateProcessingJob on `InstanceCount` hosts. Each host gets its share
//! of every ProcessingInput (`S3DataDistributionType`), `processingjobconfig.json` and its
//! own `resourceconfig.json`; once every host has exited 0, each host's output directories
//! are uploaded to the outputs' S3 prefixes, host after host, so keys from different hosts
//! sit side by side and a key two hosts wrote holds the later host's file (S3: the last
//! writer wins).

use std::path::PathBuf;

use serde_json::{Value, json};

use super::hosts::{Cluster, Distribution, instance_count};
use super::{JobFailure, Jobs, create_dir, local_path, max_runtime, prefix, required, string_map, write_json};
use crate::contract::MlRoot;
use crate::pipeline::engine::Container;
use crate::pipeline::registry::arn;

/// Where ProcessingInput and ProcessingOutput local paths must lie.
const PROCESSING: &str = "/opt/ml/processing";

/// One ProcessingOutput: its name, S3 prefix, and local path below a host's tree.
struct Output {
    name: String,
    uri: String,
    local: String,
}

impl Jobs<'_> {
    /// A Processing job: CreateProcessingJob's request, resolved. Returns DescribeProcessingJob.
    pub fn processing(&self, job: &str, args: &Value) -> Result<Value, JobFailure> {
        let count = instance_count(
            args.pointer("/ProcessingResources/ClusterConfig/InstanceCount"),
            "ProcessingResources.ClusterConfig",
        )?;
        let image = required(args, "/AppSpecification/ImageUri", "AppSpecification")?;
        let cluster = self.cluster(job, count)?;
        let mut request = args.clone();
        request["ProcessingJobName"] = json!(job);
        for host in &cluster.hosts {
            let ml = MlRoot::new(&host.root);
            write_json(&ml.processing_job_config(), &request)?;
            write_json(
                &ml.processing_resource_config(),
                &json!({"current_host": host.name, "hosts": cluster.names()}),
            )?;
        }
        self.stage_processing_inputs(&cluster, args)?;
        let outputs = processing_outputs(args)?;
        for host in &cluster.hosts {
            for output in &outputs {
                create_dir(&local_path(&host.root, &output.local, PROCESSING)?)?;
            }
        }
        let mut env = string_map(args.get("Environment"));
        env.entry("AWS_REGION".into())
            .or_insert_with(|| std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()));
        let texts = |pointer: &str| {
            args.pointer(pointer)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(crate::pipeline::expr::to_text).collect())
        };
        let template = Container {
            name: job.to_string(),
            image: image.to_string(),
            entrypoint: texts("/AppSpecification/ContainerEntrypoint"),
            args: texts("/AppSpecification/ContainerArguments").unwrap_or_default(),
            env,
            ml_root: PathBuf::new(),
            network_isolation: args
                .pointer("/NetworkConfig/EnableNetworkIsolation")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            network: None,
        };
        let message_file = "output/message";
        let ran = self.run_hosts(&cluster, &template, max_runtime(args), message_file)?;
        if let Some(failure) = ran.failure {
            return Err(failure);
        }
        self.store_outputs(&cluster, &outputs)?;
        // SageMaker concatenates the hosts' messages.
        let exit_message: String = cluster
            .hosts
            .iter()
            .map(|h| std::fs::read_to_string(h.root.join(message_file)).unwrap_or_default())
            .collect();
        let mut described = args.clone();
        let fields = described.as_object_mut().expect("arguments are an object");
        fields.insert("ProcessingJobName".into(), json!(job));
        fields.insert("ProcessingJobArn".into(), json!(arn("processing-job", job)));
        fields.insert("ProcessingJobStatus".into(), json!("Completed"));
        fields.insert("ExitMessage".into(), json!(exit_message));
        Ok(described)
    }

    /// Every S3Input, dealt to the hosts at its LocalPath.
    fn stage_processing_inputs(&self, cluster: &Cluster, args: &Value) -> Result<(), JobFailure> {
        for input in args.get("ProcessingInputs").and_then(Value::as_array).into_iter().flatten() {
            let name = input.get("InputName").and_then(Value::as_str).unwrap_or("?");
            let what = format!("ProcessingInput `{name}`");
            let s3 = input.get("S3Input").ok_or_else(|| {
                JobFailure::client(format!("{what}: only S3Input inputs run locally (not DatasetDefinition)"))
            })?;
            for (field, allowed) in [("S3DataType", "S3Prefix"), ("S3InputMode", "File"), ("S3CompressionType", "None")]
            {
                if let Some(v) = s3.get(field).and_then(Value::as_str).filter(|v| *v != allowed) {
                    return Err(JobFailure::client(format!(
                        "{what}: {field} `{v}`: the local runner supports {allowed}"
                    )));
                }
            }
            let uri = required(s3, "/S3Uri", &what)?;
            let local = required(s3, "/LocalPath", &what)?;
            let distribution = Distribution::parse(s3.get("S3DataDistributionType").and_then(Value::as_str), &what)?;
            self.stage_input(cluster, uri, distribution, |host| local_path(&host.root, local, PROCESSING))
                .map_err(|e| prefix(what.clone(), e))?;
        }
        Ok(())
    }

    /// Every host's output directories under their prefixes, hosts in order; all or nothing.
    fn store_outputs(&self, cluster: &Cluster, outputs: &[Output]) -> Result<(), JobFailure> {
        let mut stored = Vec::new();
        for output in outputs {
            for host in &cluster.hosts {
                let dir = local_path(&host.root, &output.local, PROCESSING)?;
                match self.storage.put_dir(&dir, &output.uri) {
                    Ok(mut locations) => stored.append(&mut locations),
                    Err(err) => {
                        self.storage.remove(&stored);
                        return Err(prefix(format!("ProcessingOutput `{}`", output.name), err.into()));
                    }
                }
            }
        }
        Ok(())
    }
}

fn processing_outputs(args: &Value) -> Result<Vec<Output>, JobFailure> {
    args.pointer("/ProcessingOutputConfig/Outputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|output| {
            let name = output.get("OutputName").and_then(Value::as_str).unwrap_or("?").to_string();
            let what = format!("ProcessingOutput `{name}`");
            let uri = required(output, "/S3Output/S3Uri", &what)?.to_string();
            let local = required(output, "/S3Output/LocalPath", &what)?.to_string();
            // Checked here, before anything runs.
            local_path(std::path::Path::new("/"), &local, PROCESSING)?;
            Ok(Output { name, uri, local })
        })
        .collect()
}
