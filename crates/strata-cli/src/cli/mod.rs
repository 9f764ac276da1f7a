//! The command line: clap definitions only. Doc comments are the `--help` text. This
//! file holds the top level (global options, the store and its connection flags, the
//! command list); `keys` and `jobs` hold each command's arguments.

pub mod help;
mod jobs;
mod keys;
mod search;
mod ui;

pub use jobs::*;
pub use keys::*;
pub use search::*;
pub use ui::*;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Strata: move, shape, version and protect the metadata kept in key-value stores.
///
/// Every command works on the store named by --store, else STRATA_STORE, else
/// --endpoints (ETCDCTL_ENDPOINTS), else sqlite:./strata.db, with etcd v3 semantics
/// on every backend: one revision counter, per-key versions, transactions, history
/// and watch. Only writing commands (or --create) create a missing SQLite file.
///
/// Exit codes: 0 ok, 1 error, 2 usage error, 3 a compare failed (cas, cad, txn)
/// or the key was not found.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    long_version = env!("STRATA_LONG_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreOpts,
    /// How log lines (the progress and status of backup watch and mirror, and the
    /// final error of any command) are written on stderr: text, or json (one object
    /// per line with level, time, message and fields) for a log collector.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "STRATA_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// Print only what was asked for: no notes, counts, progress or `OK` lines
    /// (data, `-o json` output, warnings and errors are still printed).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// One sentence per line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The store and how to reach it. `Debug` shows no password (of the URL, `--user
/// NAME:PASSWORD` or `--password`).
#[derive(Args, Clone)]
pub struct StoreOpts {
    /// The store: sqlite:PATH (embedded, the default), etcd://HOST:PORT[,HOST:PORT…]
    /// (several members fail over), postgres://USER[:PASSWORD]@HOST:PORT/DB[?schema=NAME],
    /// mem: (in memory, for trying things out), or the NAME of a [stores.NAME] of the
    /// config file. Without --store: STRATA_STORE, then --endpoints
    /// (ETCDCTL_ENDPOINTS), then the config file's default, then sqlite:./strata.db.
    #[arg(long, global = true, env = "STRATA_STORE", default_value = strata_store::DEFAULT_STORE_URL)]
    pub store: String,
    /// Create the SQLite file if it is missing, for any command (writing commands
    /// create it anyway; reading ones otherwise fail on a missing file).
    #[arg(long, global = true)]
    pub create: bool,
    /// The config file of named stores (default: ./strata.toml, else
    /// strata/strata.toml in the user's config folder, when they exist).
    #[arg(long, global = true, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The config file's name of the store, when --store named one (set by
    /// `crate::resolve`).
    #[arg(skip)]
    pub store_name: Option<String>,
    /// etcd endpoints as etcdctl takes them: HOST:PORT[,HOST:PORT…], each optionally
    /// http:// or https:// (TLS). Used when neither --store nor STRATA_STORE is given.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_name = "URLS",
        help_heading = "etcd connection"
    )]
    pub endpoints: Option<String>,
    /// Where `store` came from (set by `crate::resolve`, not parsed).
    #[arg(skip)]
    pub source: crate::resolve::StoreSource,
    /// TLS asked for by https:// endpoints (set by `crate::resolve`).
    #[arg(skip)]
    pub tls: bool,
    /// etcd user, as NAME or NAME:PASSWORD.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_USER",
        help_heading = "etcd connection",
        hide_env_values = true
    )]
    pub user: Option<String>,
    /// etcd password (never printed).
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_PASSWORD",
        help_heading = "etcd connection",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// CA certificate (PEM) that signed the etcd servers' certificates; turns on TLS.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_CACERT",
        value_name = "FILE",
        help_heading = "etcd connection"
    )]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_CERT",
        value_name = "FILE",
        help_heading = "etcd connection"
    )]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for TLS client authentication.
    #[arg(
        long = "key",
        global = true,
        env = "ETCDCTL_KEY",
        value_name = "FILE",
        help_heading = "etcd connection"
    )]
    pub key_file: Option<PathBuf>,
    /// How long to wait for a connection (e.g. 5s, 500ms).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "TIME", help_heading = "etcd connection")]
    pub dial_timeout: Option<Duration>,
    /// How long one request may take before it is reported as unavailable (e.g. 30s).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "TIME", help_heading = "etcd connection")]
    pub command_timeout: Option<Duration>,
    /// The server's --max-txn-ops (128 unless the cluster was started with another).
    #[arg(
        long,
        global = true,
        value_name = "N",
        value_parser = at_least_one,
        help_heading = "etcd connection"
    )]
    pub max_txn_ops: Option<usize>,
    /// etcd v2 source (etcd2://): keys with a TTL are read without it (copy, with a
    /// note), left out (skip), or written into an etcd v3 target attached to a lease
    /// of the TTL they have left (lease).
    #[arg(long, global = true, value_name = "copy|skip|lease", value_parser = parse_v2_ttl, help_heading = "etcd connection")]
    pub v2_ttl: Option<strata_store::V2Ttl>,
}

/// `--v2-ttl copy|skip|lease`.
fn parse_v2_ttl(text: &str) -> Result<strata_store::V2Ttl, String> {
    strata_store::V2Ttl::parse(text)
}

impl std::fmt::Debug for StoreOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOpts")
            .field("store", &strata_store::redact(&self.store))
            .field("create", &self.create)
            .field("config", &self.config)
            .field("store_name", &self.store_name)
            .field(
                "endpoints",
                &self.endpoints.as_deref().map(strata_store::redact),
            )
            .field("source", &self.source)
            .field("tls", &self.tls)
            .field("user", &self.user.as_deref().map(strata_store::user_name))
            .field("password", &strata_store::redacted(&self.password))
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key_file", &self.key_file)
            .field("dial_timeout", &self.dial_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_txn_ops", &self.max_txn_ops)
            .field("v2_ttl", &self.v2_ttl)
            .finish()
    }
}

impl StoreOpts {
    pub fn connect_options(&self) -> strata_store::ConnectOptions {
        strata_store::ConnectOptions {
            create: self.create,
            tls: self.tls,
            user: self.user.clone(),
            password: self.password.clone(),
            ca_cert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key_file.clone(),
            dial_timeout: self.dial_timeout,
            request_timeout: self.command_timeout,
            max_txn_ops: self.max_txn_ops,
            v2_ttl: self.v2_ttl.unwrap_or_default(),
        }
    }
}

/// Parses `500ms`, `5s`, `2m` or a plain number of seconds (as the config file does).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    strata_store::config::parse_duration(text)
}

/// A count that must be at least 1 (a usage error, not a panic later).
pub(crate) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A number of seconds, 0 up to a day (fractions allowed).
pub(crate) fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if (0.0..=86_400.0).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{text:?} must be between 0 and 86400 seconds")),
        Err(_) => Err(format!("{text:?} is not a number of seconds")),
    }
}

/// `-o` of export and import: a format, or, as before this release, a file path
/// (which [`FormatOrPath::resolve`] accepts with a warning naming `--out`).
#[derive(Debug, Clone)]
pub enum FormatOrPath {
    Format(Format),
    Path(PathBuf),
}

pub(crate) fn format_or_path(text: &str) -> Result<FormatOrPath, String> {
    Ok(match text {
        "text" => FormatOrPath::Format(Format::Text),
        "json" => FormatOrPath::Format(Format::Json),
        _ => FormatOrPath::Path(PathBuf::from(text)),
    })
}

impl FormatOrPath {
    /// The format and the output file of `-o` and `--out` together.
    pub fn resolve(
        output: Option<&FormatOrPath>,
        out: Option<&PathBuf>,
        command: &str,
    ) -> anyhow::Result<(Format, Option<PathBuf>)> {
        match (output, out) {
            (Some(FormatOrPath::Path(path)), Some(_)) => anyhow::bail!(
                "-o takes a format (text or json), and {} is neither; the file goes in --out",
                path.display()
            ),
            (Some(FormatOrPath::Path(path)), None) => {
                eprintln!(
                    "warning: `{command} -o FILE` is now `{command} --out FILE` (-o names the \
                     format: text or json); writing {} as asked, but the old form goes in the \
                     next release",
                    path.display()
                );
                Ok((Format::Text, Some(path.clone())))
            }
            (Some(FormatOrPath::Format(format)), out) => Ok((*format, out.cloned())),
            (None, out) => Ok((Format::Text, out.cloned())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// For programs: one JSON document (watch: one JSON object per line).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a key, or every key under a prefix.
    ///
    /// Prints the value of KEY; with --prefix, one `key = value` line per key.
    /// Exit code 3 when a single KEY does not exist.
    Get(GetArgs),
    /// Write a value (`-` reads it from standard input).
    Put(PutArgs),
    /// Delete a key, or every key under a prefix.
    ///
    /// A --prefix delete of more than 10 keys shows the count and some keys and asks
    /// (--yes in scripts); --dry-run lists them all. Only keys as they were read are
    /// deleted: one written meanwhile is left. Exit code 3 when a single KEY does not
    /// exist, or when keys were left because they changed.
    Del(DelArgs),
    /// List one level below a prefix, like a directory listing, with key counts.
    Ls(LsArgs),
    /// Show every key under a prefix as an indented tree, with values.
    Tree(TreeArgs),
    /// Compare-and-swap: write VALUE only if KEY is as expected.
    ///
    /// Exit code 3 (and the current state on stderr) when the compare fails.
    Cas(CasArgs),
    /// Compare-and-delete: delete KEY only if it is as expected.
    ///
    /// Exit code 3 when the compare fails or the key does not exist.
    Cad(CadArgs),
    /// Run a transaction from a JSON file (`-` for standard input).
    ///
    /// The form (keys and values are UTF-8 strings; "op" is =, !=, > or <, default =):
    ///
    ///   {"compare": [{"key": "/a", "version": 3},
    ///                {"key": "/b", "absent": true},
    ///                {"key": "/a", "mod_revision": 10, "op": "<"},
    ///                {"key": "/a", "value": "x", "op": "!="}],
    ///    "success": [{"put": {"key": "/a", "value": "1"}},
    ///                {"delete": {"key": "/b"}}, {"delete": {"prefix": "/c/"}},
    ///                {"get": {"prefix": "/c/"}}],
    ///    "failure": [{"get": {"key": "/a"}}]}
    ///
    /// Exit code 3 when a compare failed (the failure ops ran).
    Txn(TxnArgs),
    /// Every change of a key still held (up to the last compaction).
    History(HistoryArgs),
    /// Follow the changes of a key, or with --prefix of every key under it; with
    /// --from-rev, replay from that revision first.
    Watch(WatchArgs),
    /// Edit a value in $VISUAL or $EDITOR (else vi), then write it back only if the
    /// key has not changed since it was read (compare-and-swap on its revision).
    ///
    /// A missing key starts empty and is created only if still absent. An unchanged
    /// file writes nothing. On a conflict (exit 3) your edit is kept in a file whose
    /// path is printed, and the store is left as the other writer made it.
    Edit(EditArgs),
    /// Drop history older than a revision (reads and watches before it then fail).
    ///
    /// Says how many revisions of history go and asks; --yes in scripts.
    Compact(CompactArgs),
    /// Write keys as a flat JSON snapshot {key: value}, sorted, read at one revision.
    Export(ExportArgs),
    /// Whole objects through a schema: get, create, set one field, delete.
    ///
    /// create writes every field in one transaction that fails (exit 3) if the object
    /// exists already, so an object is never half-created.
    #[command(subcommand)]
    Object(ObjectCommand),
    /// Find keys and objects by the words in their values and keys: ranked, with
    /// phrases, prefixes, typos, field and entity filters.
    ///
    /// The index (tantivy) lives beside the store (FILE.search/ for SQLite, else the
    /// user's cache folder; --index DIR) and records the store revision it reflects;
    /// each query first applies the changes since then from the store's watch, so it
    /// sees every write made before it. --watch keeps it current continuously. With
    /// --schema a hit is an object (a word in /sigilgate/users/7/status finds user 7)
    /// and secret fields are never indexed. Exit code 3 when nothing is found.
    Search(SearchArgs),
    /// A web console for the store: browse the keyspace level by level with key
    /// counts, a key with its history, objects as typed forms with their references
    /// (--schema), search.
    ///
    /// Listens on 127.0.0.1:8420; anywhere else only with --token FILE, which every
    /// request must carry. Read-only unless --allow-writes (then each write is a
    /// compare-and-swap). Fields the schema marks secret are never sent to the browser.
    Ui(UiArgs),
    /// What an object references and what references it, from the schema's ref
    /// fields ("what depends on this node?").
    Refs(RefsArgs),
    /// Schemas: typed entities over key patterns, checked against the store.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Back the store up into a Git repository as readable JSON files; history and
    /// restore of any single record.
    ///
    /// Each group of sibling keys is one pretty-printed JSON file (key /a/b/c is member
    /// "c" of a/b.json), so `git log -p` shows each change as a one-line diff. The first
    /// run is a full backup; later ones replay only the changes since the revision the
    /// last commit records and edit only the affected trees. With --schema, fields
    /// marked secret are written as keyed fingerprints (or encrypted with
    /// --encrypt-secrets KEYFILE) and backup = false entities are left out.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Versioned migrations of the data in the store: per area, recorded in the
    /// store, exactly once even with several runners.
    ///
    /// A migrations folder (--dir, default ./migrations) holds one folder per area,
    /// each with <version>_<name>.toml files of steps (rename_field, move, set_default,
    /// delete_field, delete, split, explode_json, implode_json, jq). Areas are
    /// independent; within one, versions apply in order. What was applied, with a
    /// SHA-256 checksum of each file, is kept under /_strata/migrations/<area>/.
    /// Typical use: `strata migrate new users move_plan`, edit the file, `strata
    /// migrate plan`, `strata migrate up --yes`.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Import a JSON file tree through a mapping, or a dump from another store.
    ///
    /// With --mapping FILE, SOURCE is a folder of JSON files (one per record) that the
    /// mapping reshapes into objects; every defect of the input (malformed JSON, a file
    /// name and body that disagree on the primary key, a dangling reference) is
    /// reported with its file before anything is written. Without a mapping,
    /// --format etcd-v2 reads the answer of `GET /v2/keys/?recursive=true`;
    /// etcdctl-json reads `etcdctl get --prefix / -w json`; consul reads
    /// `consul kv export`; snapshot reads Strata's own {key: value} file. With -o the
    /// result is written as a snapshot and no store is touched; with --dry-run the plan
    /// against the store is printed and nothing is written; otherwise it is loaded
    /// (batched, idempotent, resumable, like `load`).
    Import(ImportArgs),
    /// Copy keys from one store to another: a consistent snapshot of the source,
    /// batched and resumable, then verified by digest.
    ///
    /// Run it again after an interruption: it writes only what is still missing. Keys
    /// in the target's copied prefixes that the source lacks are reported, and deleted
    /// only with --delete-extra.
    Copy(CopyArgs),
    /// Copy, then apply every later change of the source to the target, until
    /// interrupted (SIGINT/SIGTERM stop it cleanly).
    ///
    /// The checkpoint (last source revision applied) lives in the target at
    /// /_strata/mirror/NAME, so a restart of either store or of the mirror resumes
    /// without a gap. Lag is reported on stderr every few seconds.
    Mirror(MirrorArgs),
    /// Compare two stores: keys only on one side, and keys whose values differ.
    ///
    /// Exit code 3 when they differ.
    Diff(DiffArgs),
    /// Which store this is, where its URL came from, whether it answers, its revision,
    /// key count and version; for etcd, each endpoint's health and the leader.
    ///
    /// Exit code 1 when the store does not answer.
    Status(StatusArgs),
    /// Load a flat JSON snapshot: batched transactions, only changed keys written.
    ///
    /// Safe to run again: a second load of the same file changes nothing, and a load
    /// that was interrupted finishes the job.
    Load(LoadArgs),
    /// The config file of named stores and layers (strata.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a folder.
    Man(ManArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the parsed arguments derived `Debug` with `--password`, the
    /// password of `--user NAME:PASSWORD` and of the store URL in them.
    #[test]
    fn parsed_arguments_show_no_password_in_debug() {
        let pw = "hunter2-Zq9";
        let cli = Cli::try_parse_from([
            "strata",
            "--store",
            &format!("postgres://u:{pw}@db/meta"),
            "--user",
            &format!("root:{pw}"),
            "--password",
            pw,
            "get",
            "/a",
        ])
        .unwrap();
        let text = format!("{cli:?}");
        assert!(!text.contains(pw), "{text}");
        assert!(text.contains("root") && text.contains("db/meta"), "{text}");
    }
}
