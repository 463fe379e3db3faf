//! The `sagestep` command line: validate a SageMaker Pipelines definition, run it on this
//! machine, and look at the executions and the model registry it leaves in the store. Each
//! command group lives in its own file; `src/bin/sagestep.rs` only calls [`main`].

mod endpoints;
mod executions;
mod model;
mod registry;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::pipeline::engine::EngineKind;
use crate::pipeline::report;
use crate::storage::{Storage, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "sagestep",
    version,
    about = "Run SageMaker Pipelines definitions locally",
    after_help = "Example:\n  sagestep validate pipeline.json && sagestep run pipeline.json --store ./out/store"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the runner keeps objects and records.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// Where s3:// URIs live: a directory (s3://bucket/key is <store>/bucket/key, records in
    /// <store>/.sagestep), `s3://bucket/prefix` (real S3, each bucket nested below the prefix,
    /// records in <prefix>/.sagestep), or `s3` (the URIs as written; needs --records)
    #[arg(long, global = true, env = "SAGESTEP_STORE", default_value = "sagestep-store")]
    pub store: String,
    /// With `--store s3`: the s3:// prefix for the runner's records (executions, registry, cache)
    #[arg(long, global = true, env = "SAGESTEP_RECORDS")]
    pub records: Option<String>,
}

impl StoreArgs {
    pub(crate) fn open(&self) -> Result<Storage, String> {
        Storage::open(&self.store, self.records.as_deref()).map_err(|e: StoreError| e.to_string())
    }
}

/// How a job's containers run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EngineArg {
    /// Our binaries as local processes (no Docker needed); other images still use Docker
    Process,
    /// Every step's image under Docker, as SageMaker runs it
    Docker,
}

impl EngineArg {
    pub(crate) fn kind(self) -> EngineKind {
        match self {
            Self::Process => EngineKind::Process,
            Self::Docker => EngineKind::Docker,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check definitions against the pipeline schema and the runner's lint
    #[command(after_help = "Example:\n  sagestep validate pipeline.json")]
    Validate {
        /// Definition files (JSON, as `PipelineDefinition` takes it)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Execute a definition: every step as SageMaker runs it, with the cache and a record
    Run(run::RunArgs),
    /// Copy between the local disk and S3 (streams; multipart above 16 MiB): a local file or
    /// directory to an s3:// key or prefix, or an s3:// object or prefix into a local directory
    #[command(after_help = "Example:\n  sagestep cp data/auto-mpg.data s3://my-bucket/raw/auto-mpg.data")]
    Cp {
        /// A local path or an s3:// URI
        source: String,
        /// A local path or an s3:// URI
        destination: String,
    },
    /// Past executions: list, describe, report
    Executions {
        #[command(subcommand)]
        command: executions::ExecutionsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Model signatures (OpenSSF model signing v1.0, as Python's `model_signing`): sign, verify
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// The local model registry: model package groups, versions, approval
    Registry {
        #[command(subcommand)]
        command: registry::RegistryCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Real-time endpoints: deploy approved packages behind a SageMaker Runtime front
    Endpoints {
        #[command(subcommand)]
        command: endpoints::EndpointsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Parse the command line, run the command, and exit as it says.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
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
        Command::Run(args) => run::run(args),
        Command::Cp { source, destination } => {
            let count = crate::storage::copy(&source, &destination).map_err(|e| e.to_string())?;
            println!("copied {count} object(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Executions { command, store } => executions::run(command, &store.open()?),
        Command::Registry { command, store } => registry::run(command, &store.open()?),
        Command::Endpoints { command, store } => endpoints::run(command, &store),
        Command::Model { command } => model::run(command),
    }
}

pub(crate) fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and every argument of the tree, with its path, that has no help text.
    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if command.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
            missing.push(format!("command `{path}`"));
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                missing.push(format!("argument `{id}` of `{path}`"));
            }
        }
        for sub in command.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "sagestep", &mut missing);
        assert!(missing.is_empty(), "no help text for:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
