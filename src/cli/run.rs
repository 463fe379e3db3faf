//! `sagestep run`: execute a definition with the process or Docker engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{EngineArg, StoreArgs, parse_param};
use crate::pipeline::definition::Definition;
use crate::pipeline::engine::{self, Engine};
use crate::pipeline::report;
use crate::pipeline::runner::{self, RunConfig};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  sagestep run pipeline.json --store ./out/store\n  \
                        sagestep run pipeline.json --engine docker --param MseThreshold=0.5")]
pub(super) struct RunArgs {
    /// The definition to run
    #[arg(default_value = "pipeline.json")]
    file: PathBuf,
    /// A pipeline parameter, as StartPipelineExecution takes it (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    store: StoreArgs,
    /// How each job's containers run
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
}

pub(super) fn run(args: RunArgs) -> Result<ExitCode, String> {
    let RunArgs { file, params, store, engine, pipeline_name, seed, no_cache, work_dir, keep_work } = args;
    let definition = match Definition::load(&file) {
        Ok(definition) => definition,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(1));
        }
    };
    let name = pipeline_name
        .unwrap_or_else(|| file.file_stem().map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned()));
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second Ctrl-C while stopping ends the runner at once.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone());
        let _ = signal_hook::flag::register(signal, interrupted.clone());
    }
    let engine = Engine::new(engine.kind(), engine::default_bin_dir(), interrupted);
    let config = RunConfig {
        pipeline_name: name,
        parameters: params,
        use_cache: !no_cache,
        seed,
        work_dir,
        keep_work,
        progress: true,
    };
    let storage = store.open()?;
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
