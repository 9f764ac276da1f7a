//! One function per command: open the store, call the library, print. This module
//! also says which commands write (only they, or `--create`, may create a missing
//! SQLite file) and names the store in every error of a command that opened it.

mod backup;
mod config;
mod docs;
mod edit;
mod import;
mod kv;
mod migrate;
mod schema;
mod search;
mod snapshot;
mod status;
mod transfer;
mod ui;
mod view;

use anyhow::Context;
use strata_store::AnyStore;

use crate::cli::{BackupCommand, Cli, Command, MigrateCommand, ObjectCommand, SchemaCommand};
use crate::Outcome;

/// Whether the command writes to `--store` (or, for restore --all, to `--to`), and
/// so may create a missing SQLite file. A dry run writes nothing and creates nothing;
/// copy and mirror decide for their `--to` themselves.
fn writes(command: &Command) -> bool {
    match command {
        Command::Put(_)
        | Command::Del(_)
        | Command::Cas(_)
        | Command::Cad(_)
        | Command::Txn(_)
        | Command::Compact(_)
        | Command::Load(_)
        | Command::Edit(_) => true,
        Command::Import(args) => {
            args.out.is_none()
                && !matches!(args.output, Some(crate::cli::FormatOrPath::Path(_)))
                && !args.dry_run
        }
        Command::Object(command) => !matches!(command, ObjectCommand::Get { .. }),
        Command::Migrate(command) => matches!(command, MigrateCommand::Up { .. }),
        Command::Backup(BackupCommand::Restore { dry_run, .. }) => !dry_run,
        _ => false,
    }
}

pub async fn run(mut cli: Cli) -> anyhow::Result<Outcome> {
    cli.store.create |= writes(&cli.command);
    let opts = &cli.store;
    match cli.command {
        // These work on two stores (--from, --to) rather than --store.
        Command::Copy(args) => transfer::copy(opts, args).await,
        Command::Mirror(args) => transfer::mirror(opts, args).await,
        Command::Diff(args) => transfer::diff(opts, args).await,
        // With -o, import touches no store.
        Command::Import(args) => import::import(opts, args).await,
        // log and diff read only the repository; restore --all opens --to.
        Command::Backup(command) => backup::command(opts, command).await,
        // `migrate new` touches no store.
        Command::Migrate(MigrateCommand::New {
            area,
            name,
            dir,
            format,
        }) => migrate::new(&dir.dir, &area, &name, format),
        Command::Status(args) => status::status(opts, args).await,
        Command::Search(args) => search::search(opts, args).await,
        Command::Ui(args) => ui::ui(opts, args).await,
        Command::Config(command) => config::command(opts, command).await,
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        other => {
            let store = open(opts).await?;
            on_store(&store, other)
                .await
                .map_err(|e| name_store(e, opts))
        }
    }
}

/// An error of a command on the store, with the store named unless it already is.
fn name_store(err: anyhow::Error, opts: &crate::cli::StoreOpts) -> anyhow::Error {
    let url = strata_store::redact(&opts.store);
    if format!("{err:#}").contains(&url) {
        return err;
    }
    // The whole message in the context, so that it reads as one line (main prints
    // a cause only when the line above does not already say it).
    let line = format!("{url}: {err}");
    err.context(line)
}

async fn on_store(store: &AnyStore, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Copy(_)
        | Command::Mirror(_)
        | Command::Diff(_)
        | Command::Import(_)
        | Command::Status(_)
        | Command::Search(_)
        | Command::Ui(_)
        | Command::Completions(_)
        | Command::Man(_)
        | Command::Config(_)
        | Command::Backup(_) => {
            anyhow::bail!("copy, mirror, diff, import, status, backup, completions and man open their stores themselves, if any")
        }
        Command::Edit(args) => edit::edit(store, args).await,
        Command::Get(args) => kv::get(store, args).await,
        Command::Put(args) => kv::put(store, args).await,
        Command::Del(args) => kv::del(store, args).await,
        Command::Cas(args) => kv::cas(store, args).await,
        Command::Cad(args) => kv::cad(store, args).await,
        Command::Txn(args) => kv::txn(store, args).await,
        Command::History(args) => kv::history(store, args).await,
        Command::Compact(args) => kv::compact(store, args).await,
        Command::Ls(args) => view::ls(store, args).await,
        Command::Tree(args) => view::tree(store, args).await,
        Command::Watch(args) => view::watch(store, args).await,
        Command::Export(args) => snapshot::export(store, args).await,
        Command::Load(args) => snapshot::load(store, args).await,
        Command::Schema(SchemaCommand::Check(args)) => schema::check(store, args).await,
        Command::Schema(SchemaCommand::Infer(args)) => schema::infer(store, args).await,
        Command::Schema(SchemaCommand::Doc(args)) => schema::doc(store, args).await,
        Command::Object(command) => schema::object(store, command).await,
        Command::Refs(args) => schema::refs(store, args).await,
        Command::Migrate(command) => migrate::run(store, command).await,
    }
}

/// Opens the store of `--store` (or wherever it came from), creating a missing SQLite
/// file only for a writing command or `--create`.
pub(super) async fn open(opts: &crate::cli::StoreOpts) -> anyhow::Result<AnyStore> {
    open_named(&opts.store, opts.source.name(), opts.create, opts).await
}

/// Opens `url` with the connection flags of `opts`; creates a missing SQLite file
/// when `opts.create` says so.
async fn open_url(url: &str, opts: &crate::cli::StoreOpts) -> anyhow::Result<AnyStore> {
    let redacted = strata_store::redact(url);
    strata_store::open_with(url, &opts.connect_options())
        .await
        .with_context(|| format!("cannot open the store {redacted}"))
}

/// Opens `url` (or the config file's store of that name), given by `given_by` (a
/// flag or variable), creating a missing SQLite file only when `create`.
async fn open_named(
    url: &str,
    given_by: &str,
    create: bool,
    opts: &crate::cli::StoreOpts,
) -> anyhow::Result<AnyStore> {
    let opts = crate::resolve::other_store(opts, url, given_by)?;
    let url = opts.store.as_str();
    let redacted = strata_store::redact(url);
    let connect = strata_store::ConnectOptions {
        create,
        ..opts.connect_options()
    };
    strata_store::open_with(url, &connect)
        .await
        .with_context(|| format!("cannot open the store {redacted} (from {given_by})"))
}

/// Starts the metrics and health server of a long-running command when asked to.
async fn serve_metrics(
    addr: Option<std::net::SocketAddr>,
    monitor: strata_http::Monitor,
) -> anyhow::Result<Option<strata_http::Server>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let server = strata_http::serve(addr, monitor).await?;
    let at = server.local_addr();
    crate::log::info(
        &format!("serving metrics at http://{at}/metrics and health at http://{at}/healthz"),
        serde_json::json!({ "metrics_addr": at.to_string() }),
    );
    Ok(Some(server))
}

/// Reads a value argument: `-` is standard input, taken as is.
fn read_value(value: &str) -> anyhow::Result<Vec<u8>> {
    if value == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else {
        Ok(value.as_bytes().to_vec())
    }
}
