//! `strata ui`: a frontend over `strata_ui::serve`.

use anyhow::Context;
use strata_schema::Schema;
use strata_search::Identity;

use crate::cli::{StoreOpts, UiArgs};
use crate::output::note;
use crate::Outcome;

pub async fn ui(opts: &StoreOpts, args: UiArgs) -> anyhow::Result<Outcome> {
    let store = super::open(opts).await?;
    let (schema, text) = match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the schema {}", path.display()))?;
            (
                Some(Schema::parse(&text, &path.display().to_string())?),
                Some(text),
            )
        }
        None => (None, None),
    };
    let token = match &args.token {
        Some(path) => {
            let t = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let t = t.trim().to_owned();
            anyhow::ensure!(
                t.len() >= 16,
                "the token in {} is shorter than 16 characters",
                path.display()
            );
            Some(t)
        }
        None => None,
    };
    let identity = Identity::new(&opts.store, text.as_deref());
    let dir = args
        .index
        .clone()
        .unwrap_or_else(|| strata_search::default_dir(&opts.store, &identity));
    // How the backup's files were written: its secrets (fingerprinted, never revealed
    // by the console) by the schema, its key file inside the repository.
    let backup = match &args.repo {
        Some(repo) => Some({
            // A repository that is not one is refused here, not at the first page.
            strata_backup::last(repo)?;
            strata_backup::BackupRequest {
                repo: repo.clone(),
                schema: args.schema.clone(),
                store_url: opts.store.clone(),
                ..Default::default()
            }
            .resolve()?
        }),
        None => None,
    };
    let model = match &args.model {
        Some(dir) => Some(std::sync::Arc::new(strata_search::Embedder::load(dir)?)),
        None => None,
    };
    let layers = match &store {
        strata_store::AnyStore::Layered(l) => l
            .parts()
            .into_iter()
            .map(|(name, _, spans)| (name.to_owned(), spans))
            .collect(),
        _ => Vec::new(),
    };
    let console = strata_ui::ConsoleOptions {
        layers,
        model,
        schema,
        token,
        search: Some((dir, identity)),
        allow_writes: args.allow_writes,
        migrations: args.migrations.clone(),
        backup,
    };
    strata_ui::serve(
        store,
        args.listen,
        console,
        |addr| note!("strata: the console is at http://{addr}/ (Ctrl-C stops it)"),
        super::transfer::shutdown(),
    )
    .await?;
    Ok(Outcome::Ok)
}
