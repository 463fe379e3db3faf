//! `sagestep endpoints`: real-time endpoints from approved registry packages, served behind
//! a SageMaker Runtime front (`InvokeEndpoint`), running in the background until deleted.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{EngineArg, StoreArgs, print_json};
use crate::endpoint::control::{self, CreateRequest};
use crate::endpoint::record::EndpointRecord;
use crate::storage::Storage;

#[derive(Debug, clap::Subcommand)]
pub(super) enum EndpointsCommand {
    /// Deploy an Approved model package as an endpoint; returns once every instance answers
    /// /ping, printing the URL to point `sagemaker-runtime` clients at
    #[command(
        after_help = "Example:\n  sagestep endpoints create auto-mpg --model-package AutoMpgPackageGroupName/1 --instances 2\n  python -c \"import boto3; c = boto3.client('sagemaker-runtime', endpoint_url='http://127.0.0.1:PORT'); print(c.invoke_endpoint(EndpointName='auto-mpg', ContentType='text/csv', Body=b'8,307,130,3504,12,70,1')['Body'].read())\""
    )]
    Create {
        /// EndpointName: 1 to 63 letters, digits and hyphens
        name: String,
        /// The registry's GROUP/VERSION to deploy (must be Approved)
        #[arg(long)]
        model_package: String,
        /// How many instances serve it (InitialInstanceCount)
        #[arg(long, default_value_t = 1)]
        instances: u32,
        /// The front's port on 127.0.0.1 (0: any free port)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// How the instances run: our serve binary as processes, or the package's image under Docker
        #[arg(long, value_enum, default_value = "process")]
        engine: EngineArg,
        /// Where the endpoint's model tree and logs go (<DIR>/<name>) [default: a fresh
        /// directory under the system's temporary directory]
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Endpoints in the store: status, instances, URL
    List,
    /// One endpoint as JSON (`DescribeEndpoint`'s shape)
    #[command(after_help = "Example:\n  sagestep endpoints describe auto-mpg")]
    Describe {
        /// EndpointName
        name: String,
    },
    /// Drain the endpoint, stop every instance, remove it
    #[command(after_help = "Example:\n  sagestep endpoints delete auto-mpg")]
    Delete {
        /// EndpointName
        name: String,
    },
    /// Move the endpoint to another Approved package, blue/green: the new instances answer
    /// /ping before the front routes to them, the old ones stop once their requests are done
    #[command(after_help = "Example:\n  sagestep endpoints update auto-mpg --model-package AutoMpgPackageGroupName/2")]
    Update {
        /// EndpointName
        name: String,
        /// The registry's GROUP/VERSION to move to (must be Approved)
        #[arg(long)]
        model_package: String,
    },
    /// The endpoint's supervisor process (started by `create`; not for direct use)
    #[command(hide = true)]
    RunFront {
        /// EndpointName
        name: String,
    },
}

pub(super) fn run(command: EndpointsCommand, store: &StoreArgs) -> Result<ExitCode, String> {
    let storage = store.open()?;
    match command {
        EndpointsCommand::Create { name, model_package, instances, port, engine, work_dir } => {
            let request = CreateRequest {
                name,
                package: model_package,
                instances,
                port,
                engine: match engine {
                    EngineArg::Process => "process",
                    EngineArg::Docker => "docker",
                }
                .into(),
                work_dir: work_dir.map(absolute),
                store_args: store_args(store),
            };
            let record = control::create(&storage, &request).map_err(|e| e.to_string())?;
            println!("{}", record.url().unwrap_or_default());
        }
        EndpointsCommand::List => print!("{}", table(&storage)?),
        EndpointsCommand::Describe { name } => {
            print_json(&EndpointRecord::load(&storage, &name).map_err(|e| e.to_string())?.describe())
        }
        EndpointsCommand::Delete { name } => {
            control::delete(&storage, &name).map_err(|e| e.to_string())?;
            println!("deleted {name}");
        }
        EndpointsCommand::Update { name, model_package } => {
            let record = control::update(&storage, &name, &model_package).map_err(|e| e.to_string())?;
            println!("{name} serves {}", record.model_package);
        }
        EndpointsCommand::RunFront { name } => {
            crate::endpoint::supervisor::run(storage, &name).map_err(|e| e.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The store options again, for the supervisor (a local store as an absolute path: the
/// supervisor may outlive the caller's directory).
fn store_args(store: &StoreArgs) -> Vec<String> {
    let spec = if store.store.contains("://") || store.store == "s3" {
        store.store.clone()
    } else {
        absolute(PathBuf::from(&store.store)).display().to_string()
    };
    let mut args = vec!["--store".to_string(), spec];
    if let Some(records) = &store.records {
        args.extend(["--records".to_string(), records.clone()]);
    }
    args
}

fn table(storage: &Storage) -> Result<String, String> {
    let records = EndpointRecord::list(storage).map_err(|e| e.to_string())?;
    let mut out =
        format!("{:<32} {:<10} {:<9} {:<24} {:<40} {}\n", "NAME", "STATUS", "INSTANCES", "URL", "PACKAGE", "CREATED");
    for r in records {
        let healthy = r.instances.iter().filter(|i| i.healthy).count();
        out.push_str(&format!(
            "{:<32} {:<10} {:<9} {:<24} {:<40} {}\n",
            r.endpoint_name,
            r.endpoint_status,
            format!("{healthy}/{}", r.desired_instance_count),
            r.url().unwrap_or_else(|| "-".into()),
            r.model_package,
            r.creation_time
        ));
    }
    Ok(out)
}
