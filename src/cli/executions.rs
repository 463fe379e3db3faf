//! `sagestep executions`: the records of past runs.

use std::path::PathBuf;
use std::process::ExitCode;

use super::print_json;
use crate::pipeline::runner;
use crate::pipeline::{html, report};
use crate::storage::Storage;

#[derive(Debug, clap::Subcommand)]
pub(super) enum ExecutionsCommand {
    /// A table of every execution in the store, newest first: id, pipeline, status, seconds, start
    List,
    /// The execution record as JSON: steps, properties, errors, resources
    #[command(after_help = "Example:\n  sagestep executions describe 3f2a9c1e")]
    Describe {
        /// The execution's id (as `executions list` shows it)
        execution_id: String,
    },
    /// One self-contained HTML page of the execution: timeline, resources, tuning jobs,
    /// evaluation charts, drift per feature
    #[command(after_help = "Example:\n  sagestep executions report 3f2a9c1e -o report.html")]
    Report {
        /// The execution's id (as `executions list` shows it)
        execution_id: String,
        /// Where the page goes [default: report-<execution id>.html]
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub(super) fn run(command: ExecutionsCommand, storage: &Storage) -> Result<ExitCode, String> {
    let records = || runner::list_executions(storage).map_err(|e| e.to_string());
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
            let bytes = html::write(storage, &execution_id, &path).map_err(|e| e.to_string())?;
            println!("wrote {} ({bytes} bytes)", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
