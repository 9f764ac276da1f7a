//! Arguments of the five jobs' commands: import, backup, migrate, schema, object and
//! refs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{at_least_one, parse_duration, seconds, Format};

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
    /// Write the result as a flat snapshot here (`-`: standard output); touch no
    /// store.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The format of the summary, the dry-run plan and the import report: text or
    /// json. (Before this release -o named the snapshot file; that still works, with
    /// a warning.)
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = super::format_or_path)]
    pub output: Option<super::FormatOrPath>,
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
    /// The keys the backup covers: only those under this prefix (repeatable; default
    /// every key). `run` and `watch` back up only these; `restore` and `verify` take
    /// the same prefixes as the backup was made with.
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// A schema: its secret fields are never written in the clear and its
    /// backup = false entities are left out (give `restore` and `verify` the schema
    /// the backup was made with).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// The 32-byte key file of encrypted secrets: `run` and `watch` encrypt secrets
    /// with it (ChaCha20-Poly1305) instead of writing fingerprints, so that they can
    /// be restored; `restore` and `verify` decrypt with it.
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
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
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
        /// json: one JSON object per line on stdout for each commit (as `backup run
        /// -o json` prints it).
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Every commit where a key (or every field of an object) changed, newest first,
    /// with the values.
    Log {
        /// A key (/app/users/7/status) or an object (/app/users/7).
        target: String,
        #[command(flatten)]
        repo: BackupRepoArgs,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Every key that differs between two commits or dates.
    Diff {
        /// The older commit (id, HEAD~3, …) or date.
        from: String,
        /// The newer commit or date.
        to: String,
        #[command(flatten)]
        repo: BackupRepoArgs,
        /// The output format: text for people, json for scripts.
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
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Restore the last commit into a scratch in-memory store and compare its digest
    /// with the live store at the revision the commit records. Exit 1 on a mismatch.
    Verify {
        #[command(flatten)]
        shape: BackupShape,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
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
        /// The output format: text for people, json for scripts.
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
        /// The output format: text for people, json for scripts.
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
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Check that every applied migration still matches its file (checksum), none is
    /// missing, and no new one sits below an area's current version. Exit 1 if not.
    Verify {
        #[command(flatten)]
        dir: MigrationsDir,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Create <dir>/<area>/<next version>_<name>.toml from a commented template.
    New {
        /// The area: a folder of the migrations folder, created if new.
        area: String,
        /// A short name for the file (letters, digits, _ and -).
        name: String,
        #[command(flatten)]
        dir: MigrationsDir,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
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
    /// The output format: text for people, json for scripts.
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
        /// The object (its key prefix, such as /sigilgate/users/7).
        path: String,
        #[command(flatten)]
        schema: SchemaArg,
    },
    /// Create an object from a JSON file (`-` for standard input): all fields or none.
    Create {
        /// The object to create.
        path: String,
        /// A JSON file of its fields ({"field": value}), or `-` for standard input.
        file: PathBuf,
        /// Write an object too large for one transaction in several, behind a
        /// pending marker (readers see it only once complete; an interrupted write is
        /// rolled back by the next run).
        #[arg(long)]
        chunked: bool,
        #[command(flatten)]
        schema: SchemaArg,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Set one field, type-checked.
    Set {
        /// The object.
        path: String,
        /// The field to set (type-checked against the schema).
        field: String,
        /// The new value, as text (`7`, `true`, `blocked`).
        value: String,
        #[command(flatten)]
        schema: SchemaArg,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
    /// Delete an object's fields (not the objects nested below it).
    Delete {
        /// The object.
        path: String,
        #[command(flatten)]
        schema: SchemaArg,
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Args)]
pub struct RefsArgs {
    /// An object path or a single-value key.
    pub key: String,
    #[command(flatten)]
    pub schema: SchemaArg,
    /// Follow references this many hops out, both ways ("what depends on this node,
    /// transitively?"): every object reached and every reference between them.
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// text for people, json for scripts, dot for Graphviz (`| dot -Tsvg`).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub format: RefsFormat,
}

/// The output of `refs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum RefsFormat {
    #[default]
    Text,
    Json,
    Dot,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read and check the config file (unknown keys, layers naming a missing store,
    /// a layer nested in another on the same store, passwords that cannot be read),
    /// ask every store for its status, and print each layer with its store and
    /// revision. Exit 1 when a store does not answer.
    Check {
        /// The output format: text for people, json for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        format: Format,
    },
}
