//! `strata config check`: the config file read and checked by
//! `strata_store::config`, each store asked for its status by
//! `strata_store::status_of`, each layer printed with its store and revision.

use std::io::Write;

use anyhow::Context;
use serde_json::json;

use crate::cli::{ConfigCommand, Format, StoreOpts};
use crate::output::{pad, print_json, stdout};
use crate::Outcome;

pub async fn command(opts: &StoreOpts, command: ConfigCommand) -> anyhow::Result<Outcome> {
    let ConfigCommand::Check { format } = command;
    let path = crate::resolve::find_config(opts.config.as_deref()).context(
        "no config file: looked for ./strata.toml and the user's strata/strata.toml; \
         name one with --config FILE (or STRATA_CONFIG)",
    )?;
    let config = strata_store::config::Config::load(&path)?;
    let mut reports = Vec::new();
    for store in config.stores.values() {
        let report = strata_store::status_of(&store.url, &store.options).await?;
        reports.push((store.name.clone(), report));
    }
    let revision_of = |name: &str| {
        reports
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.revision)
    };
    let warnings = config.warnings();
    let down: Vec<&str> = reports
        .iter()
        .filter(|(_, r)| !r.reachable)
        .map(|(n, _)| n.as_str())
        .collect();
    if format == Format::Json {
        let stores: Vec<_> = reports
            .iter()
            .map(|(name, r)| {
                json!({"name": name, "url": r.url, "backend": r.backend, "reachable": r.reachable,
                       "revision": r.revision, "error": r.error})
            })
            .collect();
        let layers: Vec<_> = config
            .layers
            .iter()
            .map(|l| json!({"prefix": l.prefix, "store": l.store, "revision": revision_of(&l.store)}))
            .collect();
        print_json(&json!({
            "file": path.display().to_string(), "default": config.default,
            "stores": stores, "layers": layers, "warnings": warnings,
        }))?;
    } else {
        let mut out = stdout();
        writeln!(out, "config:    {}", path.display())?;
        writeln!(out)?;
        writeln!(
            out,
            "{} {} {:>9}  URL",
            pad("STORE", 16),
            pad("REACHABLE", 9),
            "REVISION"
        )?;
        for (name, r) in &reports {
            let revision = r.revision.map_or("-".to_owned(), |v| v.to_string());
            let reachable = if r.reachable { "yes" } else { "no" };
            writeln!(
                out,
                "{} {} {revision:>9}  {}",
                pad(name, 16),
                pad(reachable, 9),
                r.url
            )?;
            if let Some(error) = r.error.as_deref().filter(|_| !r.reachable) {
                writeln!(out, "{} ! {error}", pad("", 16))?;
            }
        }
        if !config.layers.is_empty() {
            writeln!(out)?;
            writeln!(out, "{} {}  REVISION", pad("LAYER", 24), pad("STORE", 16))?;
            for l in &config.layers {
                let revision =
                    revision_of(&l.store).map_or("-".to_owned(), |r| format!("{}@{r}", l.store));
                writeln!(
                    out,
                    "{} {}  {revision}",
                    pad(&l.prefix, 24),
                    pad(&l.store, 16)
                )?;
            }
            if config.layer_of(b"/").is_none() {
                writeln!(out, "keys outside every layer are refused (no \"/\" layer)")?;
            }
        }
        out.flush()?;
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    if !down.is_empty() {
        anyhow::bail!(
            "{} of {} not reachable: {}",
            crate::output::plural(down.len(), "store"),
            path.display(),
            down.join(", ")
        );
    }
    Ok(Outcome::Ok)
}
