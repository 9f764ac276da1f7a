//! `strata schema …`.

use std::io::Write;

use serde_json::json;
use strata_schema::{check as run_check, Schema};
use strata_store::AnyStore;

use crate::cli::*;
use crate::output::{print_json, stdout};
use crate::Outcome;

pub async fn check(store: &AnyStore, args: SchemaCheckArgs) -> anyhow::Result<Outcome> {
    let schema = Schema::load(&args.schema)?;
    let found = run_check(store, &schema, args.prefix.as_bytes()).await?;
    if args.format == Format::Json {
        let items: Vec<_> = found
            .iter()
            .map(|v| json!({"kind": v.kind.name(), "key": v.key, "detail": v.detail}))
            .collect();
        print_json(&json!(items))?;
    } else {
        let mut out = stdout();
        if !found.is_empty() {
            writeln!(out, "{:<14} {:<60} DETAIL", "KIND", "KEY")?;
        }
        for v in &found {
            writeln!(out, "{:<14} {:<60} {}", v.kind.name(), v.key, v.detail)?;
        }
        out.flush()?;
    }
    if found.is_empty() {
        eprintln!("the store matches the schema");
        return Ok(Outcome::Ok);
    }
    anyhow::bail!(
        "{} violations of the schema {}",
        found.len(),
        args.schema.display()
    )
}

pub async fn infer(store: &AnyStore, args: SchemaInferArgs) -> anyhow::Result<Outcome> {
    let draft = strata_schema::infer::infer(store, args.prefix.as_bytes()).await?;
    let mut out = stdout();
    out.write_all(draft.as_bytes())?;
    out.flush()?;
    Ok(Outcome::Ok)
}

pub async fn doc(store: &AnyStore, args: SchemaDocArgs) -> anyhow::Result<Outcome> {
    let schema = Schema::load(&args.schema)?;
    let markdown = strata_schema::doc::doc(&schema, args.live.then_some(store)).await?;
    let mut out = stdout();
    out.write_all(markdown.as_bytes())?;
    out.flush()?;
    Ok(Outcome::Ok)
}
