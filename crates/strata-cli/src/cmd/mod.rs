//! One function per command: open the store, call the library, print.

mod kv;
mod snapshot;
mod view;

use anyhow::Context;
use strata_store::AnyStore;

use crate::cli::{Cli, Command};
use crate::Outcome;

pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let store = open(&cli.store).await?;
    match cli.command {
        Command::Get(args) => kv::get(&store, args).await,
        Command::Put(args) => kv::put(&store, args).await,
        Command::Del(args) => kv::del(&store, args).await,
        Command::Cas(args) => kv::cas(&store, args).await,
        Command::Cad(args) => kv::cad(&store, args).await,
        Command::Txn(args) => kv::txn(&store, args).await,
        Command::History(args) => kv::history(&store, args).await,
        Command::Compact(args) => kv::compact(&store, args).await,
        Command::Ls(args) => view::ls(&store, args).await,
        Command::Tree(args) => view::tree(&store, args).await,
        Command::Watch(args) => view::watch(&store, args).await,
        Command::Export(args) => snapshot::export(&store, args).await,
        Command::Load(args) => snapshot::load(&store, args).await,
    }
}

async fn open(opts: &crate::cli::StoreOpts) -> anyhow::Result<AnyStore> {
    let redacted = strata_store::redact(&opts.store);
    strata_store::open_with(&opts.store, &opts.connect_options())
        .await
        .with_context(|| format!("cannot open the store {redacted}"))
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
