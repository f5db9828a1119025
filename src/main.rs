//! The `sfpg` binary: parses the command line, sets up logging and hands over to a command.
//! It holds wiring only; the work lives in the library crates.

mod cli;
mod commands;
mod database;
mod errors;
mod logging;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return cli::exit_on_parse_error(error),
    };
    // The demo speaks to a person on stdout; only warnings and errors are logged there.
    logging::init(
        cli.log_format,
        matches!(cli.command, Command::Demo(_)).then_some("warn"),
    );

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Migrate(args) => commands::migrate::run(args).await,
            Command::RotateOriginKey(args) => commands::rotate_origin_key::run(args).await,
            Command::Org(args) => commands::org::run(*args).await,
            Command::Objects(args) => commands::objects::run(args).await,
            Command::Emulator(args) => commands::emulator::run(*args).await,
            Command::Sync(args) => commands::sync::run(*args).await,
            Command::Proxy(args) => commands::proxy::run(*args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Run(args) => commands::run::run(*args).await,
            Command::Demo(args) => commands::demo::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain on one line, never a backtrace.
            eprintln!("error: {}", errors::one_line(&error));
            ExitCode::from(errors::exit_code(&error))
        }
    }
}
