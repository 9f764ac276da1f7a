//! Arguments of the commands on keys and whole stores: get, put, del, ls, tree, cas,
//! cad, txn, history, watch, compact, export, load, copy, mirror, diff, status.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{at_least_one, parse_duration, Format};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key (a path such as /sigilgate/users/7/status).
    pub key: String,
    /// Read every key that starts with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Read at this past revision.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub rev: Option<i64>,
    /// Print keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// The most keys to return (0 = all).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub limit: i64,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key (a path such as /sigilgate/users/7/status).
    pub key: String,
    /// The value; `-` reads standard input (as is, no newline stripped).
    pub value: String,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key, or with --prefix the prefix, to delete.
    pub key: String,
    /// Delete every key that starts with KEY (bytewise: end it with / to stay inside
    /// one segment). More than 10 keys are shown and must be confirmed.
    #[arg(long)]
    pub prefix: bool,
    /// With --prefix: list the keys that would be deleted; delete nothing.
    #[arg(long, requires = "prefix")]
    pub dry_run: bool,
    /// Delete without asking (required when standard input is not a terminal and
    /// --prefix matches more than 10 keys).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The prefix to list (a trailing `/` is implied).
    #[arg(default_value = "/")]
    pub prefix: String,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The prefix to show (a trailing `/` is implied).
    #[arg(default_value = "/")]
    pub prefix: String,
    /// Cut values longer than this many characters in the view (0 = never).
    #[arg(long, default_value_t = 100)]
    pub width: usize,
    /// json: one nested object, each level's keys as members and values as strings
    /// (a key that is also a level keeps its value under "").
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[group(id = "expect", required = true, multiple = false)]
pub struct Expect {
    /// The key is at this version (0 = absent).
    #[arg(long, value_name = "N", group = "expect", value_parser = clap::value_parser!(i64).range(0..))]
    pub expect_version: Option<i64>,
    /// The key holds this value.
    #[arg(long, value_name = "V", group = "expect")]
    pub expect_value: Option<String>,
    /// The key was last written at this revision.
    #[arg(long, value_name = "REV", group = "expect", value_parser = clap::value_parser!(i64).range(0..))]
    pub expect_mod_revision: Option<i64>,
    /// The key does not exist.
    #[arg(long, group = "expect")]
    pub expect_absent: bool,
}

#[derive(Debug, Args)]
pub struct CasArgs {
    /// The key (a path such as /sigilgate/users/7/status).
    pub key: String,
    /// The new value; `-` reads standard input.
    pub value: String,
    #[command(flatten)]
    pub expect: Expect,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CadArgs {
    /// The key (a path such as /sigilgate/users/7/status).
    pub key: String,
    #[command(flatten)]
    pub expect: Expect,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// The transaction file, or `-` for standard input.
    pub file: PathBuf,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The key (a path such as /sigilgate/users/7/status).
    pub key: String,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The key to watch (with --prefix: every key that starts with it).
    pub key: String,
    /// Watch every key that starts with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Replay changes from this revision before following live ones.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub from_rev: Option<i64>,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Keep the state as of this revision and everything after it.
    pub revision: i64,
    /// Compact without asking (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only keys that start with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Write the snapshot here (whole or not at all) instead of standard output; `-`
    /// is standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The format of the summary printed after writing --out FILE: text or json.
    /// (Before this release -o named the file; that still works, with a warning.)
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = super::format_or_path)]
    pub output: Option<super::FormatOrPath>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The snapshot file, or `-` for standard input.
    pub file: PathBuf,
    /// Keys per transaction (default and upper bound: the backend's limit).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct Endpoints {
    /// The source store: a URL, or the name of a [stores.NAME] of the config file.
    #[arg(
        long,
        value_name = "STORE",
        env = "STRATA_FROM",
        hide_env_values = true
    )]
    pub from: String,
    /// The target store: a URL, or the name of a [stores.NAME] of the config file.
    #[arg(long, value_name = "STORE", env = "STRATA_TO", hide_env_values = true)]
    pub to: String,
    /// Only keys under this prefix (repeat for several; default: every key).
    #[arg(long = "prefix", value_name = "P")]
    pub prefixes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Rename keys on the way: keys starting with OLD start with NEW in the target
    /// (repeat for several; the first match wins).
    #[arg(long = "rewrite", value_name = "OLD=NEW")]
    pub rewrites: Vec<String>,
    /// Say what would change in the target; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete keys in the target's copied prefixes that the source does not have.
    #[arg(long)]
    pub delete_extra: bool,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Rename keys on the way (OLD=NEW, as for copy).
    #[arg(long = "rewrite", value_name = "OLD=NEW")]
    pub rewrites: Vec<String>,
    /// Names this mirror's checkpoint in the target.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Also print the status as one JSON object per line on stdout.
    #[arg(long)]
    pub status: bool,
    /// How often to report the lag (e.g. 5s).
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "TIME")]
    pub report_every: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics and health at /healthz
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// The output format: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The key whose value to edit.
    pub key: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write strata.1 and one strata-COMMAND.1 per command here instead of printing
    /// the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
