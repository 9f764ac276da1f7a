//! The `strata` binary: parses arguments, opens the store, calls one library function
//! per command and prints. All behaviour lives in the library crates.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 a compare failed or a key was not found.

// The doc comments of the clap structs are `--help` text (`Name <email>`), not rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod cli;
mod cmd;
mod log;
mod output;
mod resolve;
mod wording;

use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::Cli;

/// What a command reports besides its output; mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A compare failed (CAS/CAD/txn) or the key was not found: exit 3.
    Mismatch,
}

fn main() -> ExitCode {
    // Parsed by hand rather than `Cli::parse()`: where --store came from (flag,
    // environment, default) is only in the matches.
    let matches = cli::help::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    log::init(cli.log_format);
    output::set_quiet(cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let resolved = resolve::resolve(&mut cli.store, &matches);
    match resolved.and_then(|()| runtime.block_on(cmd::run(cli))) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Mismatch) => ExitCode::from(3),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let mut said = err.to_string();
            let mut causes = Vec::new();
            for cause in err.chain().skip(1) {
                // Our messages often quote their cause already; say each thing once.
                let text = cause.to_string();
                if !said.contains(&text) {
                    said.push_str(&text);
                    causes.push(text);
                }
            }
            let hint = wording::hint(&err);
            if log::is_json() {
                let fields = serde_json::json!({ "causes": causes, "hint": hint });
                log::log(log::Level::Error, &err.to_string(), fields);
            } else {
                eprintln!("error: {err}");
                for cause in causes {
                    eprintln!("  caused by: {cause}");
                }
                if let Some(hint) = hint {
                    eprintln!("  hint: {hint}");
                }
            }
            ExitCode::from(1)
        }
    }
}

/// A closed stdout (`strata get --prefix / | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
