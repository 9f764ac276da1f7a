//! `strata search`: a frontend over `strata_search::run` and `follow`.

use std::io::Write;

use anyhow::Context;
use serde_json::json;
use strata_schema::Schema;
use strata_search::{CatchUp, Feed, Identity, Mode, Opened, SearchRequest};
use strata_store::AnyStore;

use crate::cli::{Format, SearchArgs, StoreOpts};
use crate::output::{is_quiet, note, print_json, stdout};
use crate::Outcome;

pub async fn search(opts: &StoreOpts, args: SearchArgs) -> anyhow::Result<Outcome> {
    let store = super::open(opts).await?;
    let (schema, text) = match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the schema {}", path.display()))?;
            let schema = Schema::parse(&text, &path.display().to_string())?;
            (Some(schema), Some(text))
        }
        None => (None, None),
    };
    let identity = Identity::new(&opts.store, text.as_deref());
    let model = match &args.model {
        Some(dir) => Some(std::sync::Arc::new(strata_search::Embedder::load(dir)?)),
        None => None,
    };
    // The stores the documents come from: each layer's, of a layered keyspace.
    let feeds: Vec<Feed<'_, AnyStore>> = match &store {
        AnyStore::Layered(layers) => layers
            .parts()
            .into_iter()
            .map(|(name, part, spans)| {
                Ok(Feed {
                    name: name.to_owned(),
                    store: part?,
                    spans,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        _ => vec![Feed::whole(&store)],
    };
    let dir = args
        .index
        .clone()
        .unwrap_or_else(|| strata_search::default_dir(&opts.store, &identity));
    if args.watch {
        note!(
            "strata: keeping the search index {} current (Ctrl-C stops)",
            dir.display()
        );
        let mut report = |done: &CatchUp, revision: i64| {
            if !is_quiet() {
                eprintln!("strata: index at revision {revision}: {}", describe(done));
            }
        };
        strata_search::follow(
            &store,
            &feeds,
            &dir,
            &identity,
            schema,
            model,
            &mut report,
            super::transfer::shutdown(),
        )
        .await?;
        return Ok(Outcome::Ok);
    }
    let req = SearchRequest {
        query: args.query.clone().unwrap_or_default(),
        mode: match (args.semantic, args.hybrid) {
            (true, _) => Mode::Semantic,
            (_, true) => Mode::Hybrid,
            _ => Mode::Words,
        },
        prefixes: args.prefix.clone(),
        limit: args.limit,
    };
    let report = strata_search::run(&store, &feeds, &dir, &identity, schema, model, &req).await?;
    if let Opened::Discarded(why) = &report.opened {
        note!(
            "strata: note: the search index {} was made anew: {why}",
            dir.display()
        );
    }
    if let Some(CatchUp::Rebuilt { docs, why }) = &report.catch_up {
        match why {
            Some(why) => note!("strata: note: rebuilt the search index ({docs} documents): {why}"),
            None => note!(
                "strata: built the search index {} ({docs} documents, revision {})",
                dir.display(),
                report.revision
            ),
        }
    }
    if args.format == Format::Json {
        let hits: Vec<_> = report
            .hits
            .iter()
            .map(|h| {
                json!({
                    "key": h.key, "object": h.id, "entity": h.entity, "score": h.score,
                    "snippet": h.marked(), "shown": h.shown,
                })
            })
            .collect();
        print_json(&json!(hits))?;
    } else {
        let mut out = stdout();
        for h in &report.hits {
            let entity = h
                .entity
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            writeln!(out, "{}{entity}  {}", h.key, h.marked())?;
        }
        out.flush()?;
    }
    // Nothing found: exit 3, as for a missing key.
    Ok(if report.hits.is_empty() {
        Outcome::Mismatch
    } else {
        Outcome::Ok
    })
}

fn describe(done: &CatchUp) -> String {
    match done {
        CatchUp::Current => "up to date".into(),
        CatchUp::Applied { changes, docs } => {
            format!("{changes} change(s), {docs} document(s) updated")
        }
        CatchUp::Rebuilt { docs, why } => match why {
            Some(why) => format!("rebuilt ({docs} documents): {why}"),
            None => format!("built ({docs} documents)"),
        },
    }
}
