//! `sagestep`: validate a SageMaker Pipelines definition, run it on this machine, and look at
//! the executions and the model registry it leaves in the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand, ValueEnum};
use sagestep::pipeline::definition::Definition;
use sagestep::pipeline::engine::{Engine, EngineKind};
use sagestep::pipeline::registry::Registry;
use sagestep::pipeline::runner::{self, RunConfig, Status};
use sagestep::pipeline::validate;
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
    Describe { execution_id: String },
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
        Err(message) => fail(&message),
    }
}

/// Run one command; an `Err` is printed as `sagestep: <message>` and exits 1.
fn dispatch(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Validate { files } => Ok(validate_files(&files)),
        Command::Run { file, params, store, engine, pipeline_name, seed, no_cache, work_dir, keep_work } => {
            let Some(definition) = load(&file) else { return Ok(ExitCode::from(1)) };
            let name = pipeline_name.unwrap_or_else(|| {
                file.file_stem().map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
            });
            let interrupted = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second Ctrl-C while stopping ends the runner at once.
                let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone());
                let _ = signal_hook::flag::register(signal, interrupted.clone());
            }
            let bin_dir = std::env::var_os("SAGESTEP_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
                std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default()
            });
            let kind = match engine {
                EngineArg::Process => EngineKind::Process,
                EngineArg::Docker => EngineKind::Docker,
            };
            let engine = Engine::new(kind, bin_dir, interrupted.clone());
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
                    print_summary(&outcome.record, &store.store);
                    match outcome.record.status {
                        Status::Succeeded => ExitCode::SUCCESS,
                        Status::Stopped => ExitCode::from(130),
                        _ => ExitCode::from(1),
                    }
                }
                Err(err) => {
                    eprintln!("sagestep run: {err}");
                    ExitCode::from(1)
                }
            })
        }
        Command::Cp { source, destination } => {
            let count = copy(&source, &destination).map_err(|e| e.to_string())?;
            println!("copied {count} object(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Executions { command, store } => {
            let storage = store.open().map_err(|e| e.to_string())?;
            let records = runner::list_executions(&storage).map_err(|e| e.to_string())?;
            match command {
                ExecutionsCommand::List => {
                    println!("{:<14} {:<22} {:<10} {:>9}  STARTED", "EXECUTION", "PIPELINE", "STATUS", "SECONDS");
                    for r in &records {
                        println!(
                            "{:<14} {:<22} {:<10} {:>9}  {}",
                            r["execution_id"].as_str().unwrap_or("?"),
                            r["pipeline_name"].as_str().unwrap_or("?"),
                            r["status"].as_str().unwrap_or("?"),
                            r["duration_seconds"].as_f64().map_or("-".into(), |d| format!("{d:.2}")),
                            r["start"].as_str().unwrap_or("?"),
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ExecutionsCommand::Describe { execution_id } => {
                    match records.iter().find(|r| r["execution_id"].as_str() == Some(execution_id.as_str())) {
                        Some(record) => Ok(print_json(record)),
                        None => Err(format!("no execution `{execution_id}` in {}", storage.describe())),
                    }
                }
            }
        }
        Command::Registry { command, store } => {
            let storage = store.open().map_err(|e| e.to_string())?;
            let registry = Registry::new(&storage);
            let result = match command {
                RegistryCommand::List { group } => list_registry(&registry, group.as_deref()),
                RegistryCommand::Describe { package } => registry.describe(&package).map(|r| {
                    print_json(&r);
                }),
                RegistryCommand::Approve { package, description } => {
                    registry.set_status(&package, "Approved", description.as_deref()).map(|r| print_status(&r))
                }
                RegistryCommand::Reject { package, description } => {
                    registry.set_status(&package, "Rejected", description.as_deref()).map(|r| print_status(&r))
                }
            };
            result.map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn copy(source: &str, destination: &str) -> Result<usize, sagestep::storage::StoreError> {
    use sagestep::storage::Location;
    let storage = Storage::s3()?;
    match (Location::parse(source)?, Location::parse(destination)?) {
        (Location::Local(path), Location::S3 { .. }) if path.is_dir() => Ok(storage.put_dir(&path, destination)?.len()),
        (Location::Local(path), Location::S3 { .. }) => storage.put_file(&path, destination).map(|_| 1),
        (Location::S3 { .. }, Location::Local(dir)) => Ok(storage.fetch(source, &dir)?.len()),
        _ => Err(sagestep::storage::LocationError::Invalid {
            given: format!("{source} {destination}"),
            reason: "one side must be local and the other s3://",
        }
        .into()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("sagestep: {message}");
    ExitCode::from(1)
}

fn print_json(value: &Value) -> ExitCode {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    ExitCode::SUCCESS
}

fn print_status(record: &Value) {
    println!(
        "{}: {}",
        record["ModelPackageName"].as_str().unwrap_or("?"),
        record["ModelApprovalStatus"].as_str().unwrap_or("?")
    );
}

fn list_registry(
    registry: &Registry<'_>,
    group: Option<&str>,
) -> Result<(), sagestep::pipeline::registry::RegistryError> {
    let groups = match group {
        Some(g) => vec![g.to_string()],
        None => registry.groups()?,
    };
    println!("{:<32} {:>7}  {:<22} {:<25} EXECUTION", "GROUP", "VERSION", "APPROVAL", "CREATED");
    for group in groups {
        for (version, record) in registry.versions(&group)? {
            println!(
                "{:<32} {:>7}  {:<22} {:<25} {}",
                group,
                version,
                record["ModelApprovalStatus"].as_str().unwrap_or("?"),
                record["CreationTime"].as_str().unwrap_or("?"),
                record.pointer("/Lineage/PipelineExecutionId").and_then(Value::as_str).unwrap_or("-"),
            );
        }
    }
    Ok(())
}

fn load(file: &std::path::Path) -> Option<Definition> {
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{shown}: cannot read: {err}");
            return None;
        }
    };
    match Definition::parse(&shown, &text) {
        Ok(definition) => Some(definition),
        Err(err) => {
            eprintln!("{err}");
            None
        }
    }
}

fn validate_files(files: &[PathBuf]) -> ExitCode {
    let mut all_valid = true;
    for file in files {
        let Some(definition) = load(file) else {
            all_valid = false;
            continue;
        };
        let issues = validate::validate(&definition);
        if issues.is_empty() {
            println!(
                "{}: valid ({} steps, {} parameters)",
                file.display(),
                definition.steps.len(),
                definition.parameters.len()
            );
        } else {
            all_valid = false;
            for issue in &issues {
                println!("{}: {issue}", file.display());
            }
            println!("{}: {} problem(s)", file.display(), issues.len());
        }
    }
    if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_summary(record: &runner::ExecutionRecord, store: &str) {
    println!();
    println!("{:<24} {:<14} {:<12} {:>8}  DETAIL", "STEP", "TYPE", "STATUS", "SECONDS");
    for step in &record.steps {
        let detail = match (&step.cache_hit_from, &step.error) {
            (Some(from), _) => format!("cache hit (execution {from})"),
            (_, Some(error)) => error.lines().next().unwrap_or_default().chars().take(100).collect(),
            _ => step_detail(&step.properties),
        };
        println!(
            "{:<24} {:<14} {:<12} {:>8}  {}",
            step.name,
            step.kind,
            format!("{:?}", step.status),
            step.duration_seconds.map_or("-".into(), |d| format!("{d:.2}")),
            detail
        );
    }
    println!();
    println!(
        "execution {} of {}: {:?} in {:.2} s (engine: {})",
        record.execution_id,
        record.pipeline_name,
        record.status,
        record.duration_seconds.unwrap_or_default(),
        record.engine
    );
    if let Some(reason) = &record.failure_reason {
        println!("failure: {reason}");
    }
    println!("record: sagestep executions describe {} --store {store}", record.execution_id);
}

fn step_detail(properties: &Value) -> String {
    if let Some(best) = properties.get("BestTrainingJob") {
        let metric = best.get("FinalHyperParameterTuningJobObjectiveMetric");
        return format!(
            "best {} {}={}",
            best["TrainingJobName"].as_str().unwrap_or("?"),
            metric.and_then(|m| m["MetricName"].as_str()).unwrap_or("?"),
            metric.map(|m| m["Value"].to_string()).unwrap_or_default()
        );
    }
    if let Some(outcome) = properties.get("Outcome") {
        return format!("outcome {outcome}");
    }
    if let Some(name) = properties.get("ModelPackageName").and_then(Value::as_str) {
        return format!("{name} ({})", properties["ModelApprovalStatus"].as_str().unwrap_or("?"));
    }
    if let Some(out) = properties.pointer("/TransformOutput/S3OutputPath").and_then(Value::as_str) {
        return format!("output {out}");
    }
    if let Some(name) = properties.get("ModelName").and_then(Value::as_str) {
        return format!("model {name}");
    }
    properties.get("ProcessingJobName").and_then(Value::as_str).map(|j| format!("job {j}")).unwrap_or_default()
}
