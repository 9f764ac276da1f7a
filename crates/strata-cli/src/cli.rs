//! The command line: clap definitions only. Doc comments are the `--help` text.

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
#[derive(Args)]
pub struct StoreOpts {
    /// The store: sqlite:PATH (embedded, the default), etcd://HOST:PORT[,HOST:PORT…]
    /// (several members fail over), postgres://USER[:PASSWORD]@HOST:PORT/DB[?schema=NAME],
    /// or mem: (in memory, for trying things out). Without --store: STRATA_STORE, then
    /// --endpoints (ETCDCTL_ENDPOINTS), then the default.
    #[arg(long, global = true, env = "STRATA_STORE", default_value = strata_store::DEFAULT_STORE_URL)]
    pub store: String,
    /// Create the SQLite file if it is missing, for any command (writing commands
    /// create it anyway; reading ones otherwise fail on a missing file).
    #[arg(long, global = true)]
    pub create: bool,
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
}

impl std::fmt::Debug for StoreOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOpts")
            .field("store", &strata_store::redact(&self.store))
            .field("create", &self.create)
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
        }
    }
}

/// Parses `500ms`, `5s`, `2m` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s or 500ms"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s or m")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= Duration::from_secs(31_536_000))
        .ok_or_else(|| format!("{text:?} is longer than a year; give a shorter time"))
}

/// A count that must be at least 1 (a usage error, not a panic later).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A number of seconds, 0 up to a day (fractions allowed).
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if (0.0..=86_400.0).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{text:?} must be between 0 and 86400 seconds")),
        Err(_) => Err(format!("{text:?} is not a number of seconds")),
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
    /// Follow changes under a prefix; with --from-rev, replay from that revision
    /// first.
    Watch(WatchArgs),
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
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct GetArgs {
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
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub key: String,
    /// The value; `-` reads standard input (as is, no newline stripped).
    pub value: String,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DelArgs {
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
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The prefix to list (a trailing `/` is implied).
    #[arg(default_value = "/")]
    pub prefix: String,
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
    pub key: String,
    /// The new value; `-` reads standard input.
    pub value: String,
    #[command(flatten)]
    pub expect: Expect,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CadArgs {
    pub key: String,
    #[command(flatten)]
    pub expect: Expect,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// The transaction file, or `-` for standard input.
    pub file: PathBuf,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub key: String,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch every key that starts with this prefix.
    pub prefix: String,
    /// Replay changes from this revision before following live ones.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub from_rev: Option<i64>,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
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
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only keys that start with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The snapshot file, or `-` for standard input.
    pub file: PathBuf,
    /// Keys per transaction (default and upper bound: the backend's limit).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub batch: Option<usize>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct Endpoints {
    /// The source store URL.
    #[arg(long, value_name = "URL", env = "STRATA_FROM", hide_env_values = true)]
    pub from: String,
    /// The target store URL.
    #[arg(long, value_name = "URL", env = "STRATA_TO", hide_env_values = true)]
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
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dump file, or `-` for standard input.
    pub source: PathBuf,
    /// What the file is: etcd-v2, etcdctl-json, consul or snapshot (a dump whose
    /// keys are kept as they are). Give --mapping instead for a JSON file tree.
    #[arg(
        long,
        value_name = "FORMAT",
        conflicts_with = "mapping",
        value_parser = ["etcd-v2", "etcdctl-json", "consul", "snapshot"]
    )]
    pub format: Option<String>,
    /// The mapping (TOML) that turns the JSON file tree SOURCE into keys.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Also delete the fields of imported objects that the input no longer has
    /// (stale fields), each object in one transaction. Needs --mapping.
    #[arg(long)]
    pub prune: bool,
    /// Check the result against this schema before anything is written: any
    /// violation is reported with its key and nothing is written.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Keys per transaction (default and upper bound: the backend's limit); an
    /// object is never split across transactions.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Write the result as a flat snapshot here; touch no store.
    #[arg(short = 'o', long = "output", value_name = "SNAPSHOT")]
    pub output: Option<PathBuf>,
    /// Print what would be added and changed in the store; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BackupRepoArgs {
    /// The backup repository (created, bare, on the first run).
    #[arg(long, value_name = "DIR", env = "STRATA_BACKUP_REPO")]
    pub repo: PathBuf,
}

#[derive(Debug, Args)]
pub struct BackupShape {
    #[command(flatten)]
    pub repo: BackupRepoArgs,
    /// Back up only keys under this prefix (repeatable; default every key).
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// A schema: its secret fields are never written in the clear and its
    /// backup = false entities are left out.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Encrypt secrets (ChaCha20-Poly1305) with this 32-byte key file instead of
    /// writing fingerprints, so that they can be restored.
    #[arg(long, value_name = "KEYFILE")]
    pub encrypt_secrets: Option<PathBuf>,
    /// The HMAC key of secret fingerprints (default: strata/fingerprint.key inside the
    /// repository's Git folder, created on first use; never committed or pushed).
    #[arg(long, value_name = "FILE")]
    pub fingerprint_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupWriteArgs {
    #[command(flatten)]
    pub shape: BackupShape,
    /// Commit author, as "Name <email>".
    #[arg(
        long,
        value_name = "NAME <EMAIL>",
        default_value = "Strata Backup <strata@localhost>"
    )]
    pub author: String,
    /// Committer, as "Name <email>" (default: the author).
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub committer: Option<String>,
    /// Push the branch to this remote (a name or a URL/path) after each commit.
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up once: a full backup the first time, then only what changed since the
    /// last commit's revision. A commit is made only when something changed; its
    /// message holds the store, the revision and the counts of keys added, changed
    /// and removed.
    Run {
        #[command(flatten)]
        args: BackupWriteArgs,
    },
    /// Back up continuously: follow the store's changes and commit each burst after
    /// --debounce (so at most seconds of changes are unsaved). Resumes from the last
    /// commit's revision after a disconnect or restart; stops on SIGINT/SIGTERM after
    /// committing what it has.
    Watch {
        #[command(flatten)]
        args: BackupWriteArgs,
        /// Seconds to gather changes before a commit.
        #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = seconds)]
        debounce: f64,
        /// How often to check that the store answers (e.g. 5s).
        #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "TIME")]
        check_every: Duration,
        /// Serve Prometheus metrics at http://ADDR/metrics and health at /healthz
        /// (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Every commit where a key (or every field of an object) changed, newest first,
    /// with the values.
    Log {
        /// A key (/app/users/7/status) or an object (/app/users/7).
        target: String,
        #[command(flatten)]
        repo: BackupRepoArgs,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Every key that differs between two commits or dates.
    Diff {
        from: String,
        to: String,
        #[command(flatten)]
        repo: BackupRepoArgs,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Restore keys as they were at a commit or date.
    ///
    /// TARGET is a key or object (/app/users/7: the key and everything below it) or a
    /// prefix ending in /. Restored in one transaction that holds only if none of those
    /// keys changed since read: a concurrent change is reported, not overwritten,
    /// unless --force. Keys of the span missing from the backup are deleted.
    /// The plan is shown and must be confirmed first (--yes in scripts).
    /// With --all --to URL, a whole store is rebuilt into an empty one.
    Restore {
        /// Key, object or prefix (with a trailing /); leave out with --all.
        #[arg(required_unless_present = "all")]
        target: Option<String>,
        /// A commit (id, HEAD~3, …) or a date (2026-11-24T08:00:00Z, 2026-11-24 09:00+01:00;
        /// a bare date is its 00:00 UTC): the last commit made at or before it.
        #[arg(long, value_name = "COMMIT|DATE", default_value = "HEAD")]
        at: String,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore without showing the plan and asking (required when standard
        /// input is not a terminal; not needed with --all, whose target is empty).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Overwrite keys that changed since they were read.
        #[arg(long)]
        force: bool,
        /// Allow a restore larger than one transaction (etcd: --max-txn-ops writes):
        /// batches, each conditioned on its own keys. Not atomic as a whole: a conflict
        /// stops it part-way; running it again finishes the job.
        #[arg(long, conflicts_with = "all")]
        in_batches: bool,
        /// Rebuild every key of the backup into the empty store --to.
        #[arg(long, requires = "to", conflicts_with = "target")]
        all: bool,
        /// The store to rebuild into (with --all).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        #[command(flatten)]
        shape: BackupShape,
    },
    /// Restore the last commit into a scratch in-memory store and compare its digest
    /// with the live store at the revision the commit records. Exit 1 on a mismatch.
    Verify {
        #[command(flatten)]
        shape: BackupShape,
    },
}

#[derive(Debug, Args)]
pub struct MigrationsDir {
    /// The migrations folder: one subfolder per area.
    #[arg(
        long,
        value_name = "DIR",
        env = "STRATA_MIGRATIONS",
        default_value = "migrations"
    )]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct MigrateSelect {
    #[command(flatten)]
    pub dir: MigrationsDir,
    /// Only this area.
    #[arg(long, value_name = "AREA")]
    pub area: Option<String>,
    /// Stop after this version (inclusive).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Per area: the current version, pending migrations, one in progress, the lock.
    Status {
        #[command(flatten)]
        dir: MigrationsDir,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// The exact key changes `up` would make, counted per step and per entity; writes nothing.
    ///
    /// The pending migrations run on an in-memory copy of the keys they can touch,
    /// with the same code as `up`, and every added (+), changed (~) and removed (-)
    /// key is printed.
    Plan {
        #[command(flatten)]
        select: MigrateSelect,
        /// Print only the counts, not every key.
        #[arg(long)]
        summary: bool,
        /// A schema: values of its `secret` fields (and `secret_paths` values) are
        /// shown as <secret>, so a plan can go into a CI log or a review.
        #[arg(long, value_name = "FILE")]
        schema: Option<std::path::PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Apply pending migrations (and finish one an interrupted run left in progress).
    ///
    /// Takes the area's lock (another runner waits with --wait, or exits naming the
    /// holder), refuses to run if an applied migration's file changed, then rewrites
    /// every object once, each write conditioned on the revisions it read: an
    /// application's concurrent write is never lost, the object is redone. Killed at
    /// any moment, it resumes where it stopped when run again.
    Up {
        #[command(flatten)]
        select: MigrateSelect,
        /// Apply without asking (required when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Wait up to this many seconds for another runner's lock.
        #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
        wait: u64,
        /// A lock not renewed for this many seconds (a killed runner's) is released:
        /// on etcd it is the TTL of the lock's lease, elsewhere its expiry.
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        lock_ttl: u64,
        /// Keys read per page while scanning a step's objects.
        #[arg(long, value_name = "KEYS", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        page: i64,
    },
    /// Check that every applied migration still matches its file (checksum), none is
    /// missing, and no new one sits below an area's current version. Exit 1 if not.
    Verify {
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Create <dir>/<area>/<next version>_<name>.toml from a commented template.
    New {
        area: String,
        name: String,
        #[command(flatten)]
        dir: MigrationsDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Check the store against a schema, streaming it page by page: keys that match
    /// no pattern, missing required fields, type and enum violations, dangling
    /// references, and fields that belong to another layer. Exit code 1 when anything
    /// is found.
    Check(SchemaCheckArgs),
    /// Print a draft schema (TOML) inferred from the keys under a prefix: variable
    /// segments (ids, UUIDs, IPs, emails, host:port names), key patterns, field types,
    /// and values that are JSON documents. Review it, then use it with `schema check`.
    Infer(SchemaInferArgs),
    /// Render the schema as Markdown: each pattern, its fields, types, descriptions,
    /// secrets and references; with --live, object counts and example values from the
    /// store (secrets masked).
    Doc(SchemaDocArgs),
}

#[derive(Debug, Args)]
pub struct SchemaDocArgs {
    /// The schema file.
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// Add counts and example values from the store.
    #[arg(long)]
    pub live: bool,
}

#[derive(Debug, Args)]
pub struct SchemaInferArgs {
    /// Only keys under this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

#[derive(Debug, Args)]
pub struct SchemaCheckArgs {
    /// The schema file (TOML; see the README).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// Only keys under this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SchemaArg {
    /// The schema file.
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Print an object as typed JSON (exit 3 if it does not exist).
    Get {
        path: String,
        #[command(flatten)]
        schema: SchemaArg,
    },
    /// Create an object from a JSON file (`-` for standard input): all fields or none.
    Create {
        path: String,
        file: PathBuf,
        /// Write an object too large for one transaction in several, behind a
        /// pending marker (readers see it only once complete; an interrupted write is
        /// rolled back by the next run).
        #[arg(long)]
        chunked: bool,
        #[command(flatten)]
        schema: SchemaArg,
    },
    /// Set one field, type-checked.
    Set {
        path: String,
        field: String,
        value: String,
        #[command(flatten)]
        schema: SchemaArg,
    },
    /// Delete an object's fields (not the objects nested below it).
    Delete {
        path: String,
        #[command(flatten)]
        schema: SchemaArg,
    },
}

#[derive(Debug, Args)]
pub struct RefsArgs {
    /// An object path or a single-value key.
    pub key: String,
    #[command(flatten)]
    pub schema: SchemaArg,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: Format,
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
