//! `sagestep registry`: model package groups and versions, and their approval.

use std::process::ExitCode;

use crate::pipeline::registry::Registry;
use crate::pipeline::report;
use crate::storage::Storage;

#[derive(Debug, clap::Subcommand)]
pub(super) enum RegistryCommand {
    /// Groups and their versions, with status and creation time
    List {
        /// Only this model package group
        #[arg(long)]
        group: Option<String>,
    },
    /// One version as JSON (`DescribeModelPackage`'s shape)
    #[command(after_help = "Example:\n  sagestep registry describe AutoMpgPackageGroupName/1")]
    Describe {
        /// GROUP/VERSION, e.g. AutoMpgPackageGroupName/1
        package: String,
    },
    /// Set a version's ModelApprovalStatus to Approved (what deployments require)
    #[command(
        after_help = "Example:\n  sagestep registry approve AutoMpgPackageGroupName/1 --description \"MSE 7.1 on test\""
    )]
    Approve {
        /// GROUP/VERSION, e.g. AutoMpgPackageGroupName/1
        package: String,
        /// ApprovalDescription: why it was approved
        #[arg(long)]
        description: Option<String>,
    },
    /// Set a version's ModelApprovalStatus to Rejected
    #[command(after_help = "Example:\n  sagestep registry reject AutoMpgPackageGroupName/2 --description \"drifted\"")]
    Reject {
        /// GROUP/VERSION, e.g. AutoMpgPackageGroupName/1
        package: String,
        /// ApprovalDescription: why it was rejected
        #[arg(long)]
        description: Option<String>,
    },
}

pub(super) fn run(command: RegistryCommand, storage: &Storage) -> Result<ExitCode, String> {
    let registry = Registry::new(storage);
    let text = match command {
        RegistryCommand::List { group } => report::registry_table(&registry, group.as_deref()),
        RegistryCommand::Describe { package } => {
            registry.describe(&package).map(|r| serde_json::to_string_pretty(&r).unwrap_or_default() + "\n")
        }
        RegistryCommand::Approve { package, description } => {
            registry.set_status(&package, "Approved", description.as_deref()).map(|r| report::package_status(&r) + "\n")
        }
        RegistryCommand::Reject { package, description } => {
            registry.set_status(&package, "Rejected", description.as_deref()).map(|r| report::package_status(&r) + "\n")
        }
    };
    print!("{}", text.map_err(|e| e.to_string())?);
    Ok(ExitCode::SUCCESS)
}
