//! `strata schema …`.

use std::io::Write;

use serde_json::json;
use strata_schema::{check as run_check, Schema};
use strata_store::AnyStore;

use crate::cli::*;
use crate::output::{note, print_json, stdout, summary};
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
        note!("the store matches the schema");
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

pub async fn object(store: &AnyStore, command: ObjectCommand) -> anyhow::Result<Outcome> {
    use strata_schema::object::{self, ObjectError};
    match command {
        ObjectCommand::Get { path, schema } => {
            let schema = Schema::load(&schema.schema)?;
            match object::get(store, &schema, &path).await? {
                Some(value) => print_json(&value)?,
                None => {
                    eprintln!("object {path} not found");
                    return Ok(Outcome::Mismatch);
                }
            }
        }
        ObjectCommand::Create {
            path,
            file,
            chunked,
            schema,
            format,
        } => {
            let schema = Schema::load(&schema.schema)?;
            let name = file.display().to_string();
            let text = if name == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{name}: not valid JSON: {e}"))?;
            let created = if chunked {
                object::create_chunked(store, &schema, &path, &value).await
            } else {
                object::create(store, &schema, &path, &value).await
            };
            match created {
                Ok(revision) if format == Format::Json => {
                    print_json(&json!({"created": path, "revision": revision}))?
                }
                Ok(revision) => summary!("created {path} (revision {revision})"),
                Err(e @ ObjectError::Exists { .. }) => {
                    eprintln!("{e}");
                    return Ok(Outcome::Mismatch);
                }
                Err(e) => return Err(e.into()),
            }
        }
        ObjectCommand::Set {
            path,
            field,
            value,
            schema,
            format,
        } => {
            let schema = Schema::load(&schema.schema)?;
            let revision = object::set(store, &schema, &path, &field, &value).await?;
            match format {
                Format::Json => {
                    print_json(&json!({"object": path, "field": field, "revision": revision}))?
                }
                Format::Text => summary!("OK (revision {revision})"),
            }
        }
        ObjectCommand::Delete {
            path,
            schema,
            format,
        } => {
            let schema = Schema::load(&schema.schema)?;
            let deleted = object::delete(store, &schema, &path).await?;
            match format {
                Format::Json => print_json(&json!({"object": path, "deleted_fields": deleted}))?,
                Format::Text => summary!("deleted {deleted} fields of {path}"),
            }
            if deleted == 0 {
                return Ok(Outcome::Mismatch);
            }
        }
    }
    Ok(Outcome::Ok)
}

pub async fn refs(store: &AnyStore, args: RefsArgs) -> anyhow::Result<Outcome> {
    let schema = Schema::load(&args.schema.schema)?;
    if args.depth.is_some() || args.format == RefsFormat::Dot {
        return refs_graph(store, &schema, args).await;
    }
    let Some(found) = strata_schema::refs::refs(store, &schema, &args.key).await? else {
        anyhow::bail!(
            "{} matches no entity of {}",
            args.key,
            args.schema.schema.display()
        );
    };
    if args.format == RefsFormat::Json {
        print_json(&json!({
            "entity": found.entity,
            "references": found.outgoing.iter().map(|(k, t)| json!({"key": k, "object": t})).collect::<Vec<_>>(),
            "referenced_by": found.incoming,
        }))?;
    } else {
        let mut out = stdout();
        writeln!(out, "{} ({})", args.key, found.entity)?;
        for (holder, target) in &found.outgoing {
            writeln!(out, "  references   {target}   (via {holder})")?;
        }
        for key in &found.incoming {
            writeln!(out, "  referenced by {key}")?;
        }
        out.flush()?;
    }
    Ok(Outcome::Ok)
}

/// `refs --depth N` (or `-o dot`): the references around a key, transitively.
async fn refs_graph(store: &AnyStore, schema: &Schema, args: RefsArgs) -> anyhow::Result<Outcome> {
    let depth = args.depth.unwrap_or(1);
    let Some(g) = strata_schema::refs::graph(store, schema, &args.key, depth).await? else {
        anyhow::bail!(
            "{} matches no entity of {}",
            args.key,
            args.schema.schema.display()
        );
    };
    let mut out = stdout();
    match args.format {
        RefsFormat::Dot => write!(out, "{}", g.dot())?,
        RefsFormat::Json => print_json(&json!({
            "nodes": g.nodes.iter().map(|(k, e, h)| json!({"key": k, "entity": e, "hops": h})).collect::<Vec<_>>(),
            "edges": g.edges.iter().map(|(f, t, v)| json!({"from": f, "to": t, "via": v})).collect::<Vec<_>>(),
        }))?,
        RefsFormat::Text => {
            for (node, entity, hops) in &g.nodes {
                writeln!(out, "{}{node} ({entity})", "  ".repeat(*hops))?;
            }
            writeln!(
                out,
                "{} objects, {} references",
                g.nodes.len(),
                g.edges.len()
            )?;
            for (from, to, via) in &g.edges {
                writeln!(out, "  {from} -> {to}   (via {via})")?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}
