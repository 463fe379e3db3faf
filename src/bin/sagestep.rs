//! `sagestep`: validate a SageMaker Pipelines definition, run it on this machine, and look at
//! the executions and the model registry it leaves in the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand, ValueEnum};
use sagestep::pipeline::definition::Definition;
use sagestep::pipeline::engine::{self, Engine, EngineKind};
use sagestep::pipeline::html;
use sagestep::pipeline::registry::Registry;
use sagestep::pipeline::report;
use sagestep::pipeline::runner::{self, RunConfig};
use sagestep::storage::Storage;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(version, about = "Run SageMaker Pipelines definitions locally")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Where s3:// URIs live: a directory (s3://bucket/key is <store>/bucket/key, records in
    /// <store>/.sagestep), `s3://bucket/prefix` (real S3, each bucket nested below the prefix,
    /// records in <prefix>/.sagestep), or `s3` (the URIs as written; needs --records)
    #[arg(long, global = true, env = "SAGESTEP_STORE", default_value = "sagestep-store")]
    store: String,
    /// With `--store s3`: the s3:// prefix for the runner's records (executions, registry, cache)
    #[arg(long, global = true, env = "SAGESTEP_RECORDS")]
    records: Option<String>,
}

impl StoreArgs {
    fn open(&self) -> Result<Storage, sagestep::storage::StoreError> {
        Storage::open(&self.store, self.records.as_deref())
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EngineArg {
    /// Our binaries as local processes (no Docker needed); other images still use Docker
    Process,
    /// Every step's image under Docker, as SageMaker runs it
    Docker,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check definitions against the pipeline schema and the runner's lint
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Execute a definition
    Run {
        #[arg(default_value = "pipeline.json")]
        file: PathBuf,
        /// A pipeline parameter, as StartPipelineExecution takes it (repeatable)
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value = "process")]
        engine: EngineArg,
        /// Pipeline name [default: the file name without its extension]
        #[arg(long)]
        pipeline_name: Option<String>,
        /// Seed of the tuning strategies' random draws
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Run every step, even where CacheConfig would reuse an earlier result
        #[arg(long)]
        no_cache: bool,
        /// Where job directories are made [default: the system temporary directory]
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep the job directories after the run
        #[arg(long)]
        keep_work: bool,
    },
    /// Copy between the local disk and S3 (streams; multipart above 16 MiB): a local file or
    /// directory to an s3:// key or prefix, or an s3:// object or prefix into a local directory
    Cp { source: String, destination: String },
    /// Past executions
    Executions {
        #[command(subcommand)]
        command: ExecutionsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The local model registry
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ExecutionsCommand {
    List,
    /// The execution record as JSON: steps, properties, errors, resources
    Describe {
        execution_id: String,
    },
    /// One self-contained HTML page of the execution: timeline, resources, tuning jobs,
    /// evaluation charts, drift per feature
    Report {
        execution_id: String,
        /// Where the page goes [default: report-<execution id>.html]
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Groups and their versions
    List {
        #[arg(long)]
        group: Option<String>,
    },
    /// One version as JSON, e.g. AutoMpgPackageGroupName/1
    Describe { package: String },
    Approve {
        package: String,
        #[arg(long)]
        description: Option<String>,
    },
    Reject {
        package: String,
        #[arg(long)]
        description: Option<String>,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sagestep::logging::init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sagestep: {message}");
            ExitCode::from(1)
        }
    }
}

/// Run one command; an `Err` is printed as `sagestep: <message>` and exits 1.
fn dispatch(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Validate { files } => {
            let report = report::validation(&files);
            print!("{}", report.stdout);
            eprint!("{}", report.stderr);
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Run { file, params, store, engine, pipeline_name, seed, no_cache, work_dir, keep_work } => {
            let definition = match Definition::load(&file) {
                Ok(definition) => definition,
                Err(err) => {
                    eprintln!("{err}");
                    return Ok(ExitCode::from(1));
                }
            };
            let name = pipeline_name.unwrap_or_else(|| {
                file.file_stem().map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
            });
            let interrupted = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second Ctrl-C while stopping ends the runner at once.
                let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone());
                let _ = signal_hook::flag::register(signal, interrupted.clone());
            }
            let kind = match engine {
                EngineArg::Process => EngineKind::Process,
                EngineArg::Docker => EngineKind::Docker,
            };
            let engine = Engine::new(kind, engine::default_bin_dir(), interrupted);
            let config = RunConfig {
                pipeline_name: name,
                parameters: params,
                use_cache: !no_cache,
                seed,
                work_dir,
                keep_work,
                progress: true,
            };
            let storage = store.open().map_err(|e| e.to_string())?;
            Ok(match runner::run(definition, storage, engine, config) {
                Ok(outcome) => {
                    print!("{}", report::summary(&outcome.record, &store.store));
                    ExitCode::from(outcome.record.status.exit_code())
                }
                Err(err) => {
                    eprintln!("sagestep run: {err}");
                    ExitCode::from(1)
                }
            })
        }
        Command::Cp { source, destination } => {
            let count = sagestep::storage::copy(&source, &destination).map_err(|e| e.to_string())?;
            println!("copied {count} object(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Executions { command, store } => {
            let storage = store.open().map_err(|e| e.to_string())?;
            let records = || runner::list_executions(&storage).map_err(|e| e.to_string());
            match command {
                ExecutionsCommand::List => print!("{}", report::executions_table(&records()?)),
                ExecutionsCommand::Describe { execution_id } => {
                    let records = records()?;
                    let record = records
                        .iter()
                        .find(|r| r["execution_id"].as_str() == Some(execution_id.as_str()))
                        .ok_or_else(|| format!("no execution `{execution_id}` in {}", storage.describe()))?;
                    print_json(record);
                }
                ExecutionsCommand::Report { execution_id, output } => {
                    let path = output.unwrap_or_else(|| PathBuf::from(format!("report-{execution_id}.html")));
                    let bytes = html::write(&storage, &execution_id, &path).map_err(|e| e.to_string())?;
                    println!("wrote {} ({bytes} bytes)", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry { command, store } => {
            let storage = store.open().map_err(|e| e.to_string())?;
            let registry = Registry::new(&storage);
            let text = match command {
                RegistryCommand::List { group } => report::registry_table(&registry, group.as_deref()),
                RegistryCommand::Describe { package } => {
                    registry.describe(&package).map(|r| serde_json::to_string_pretty(&r).unwrap_or_default() + "\n")
                }
                RegistryCommand::Approve { package, description } => registry
                    .set_status(&package, "Approved", description.as_deref())
                    .map(|r| report::package_status(&r) + "\n"),
                RegistryCommand::Reject { package, description } => registry
                    .set_status(&package, "Rejected", description.as_deref())
                    .map(|r| report::package_status(&r) + "\n"),
            };
            print!("{}", text.map_err(|e| e.to_string())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}
