//! `sagestep`: validate a SageMaker Pipelines definition, run it on this machine, and look at
//! the executions and the model registry it leaves in the store (the commands: `sagestep::cli`).

fn main() -> std::process::ExitCode {
    sagestep::cli::main()
}
