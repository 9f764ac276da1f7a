//! The arguments of `strata ui`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Where to listen. Anything but a loopback address needs --token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
    /// A schema: objects as typed forms, references, and its secret fields never sent
    /// to the browser.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// A file holding the token every request must carry (Authorization: Bearer
    /// TOKEN, or ?token=TOKEN once, which sets a cookie). Required off loopback.
    #[arg(long, value_name = "FILE", env = "STRATA_UI_TOKEN_FILE")]
    pub token: Option<PathBuf>,
    /// Let pages write: a key's value and its delete, each a compare-and-swap on the
    /// revision the page showed (a change made meanwhile is shown as a conflict, never
    /// overwritten), objects created from a form, restores from --repo; only from the
    /// console's own pages, each logged on stderr.
    #[arg(long)]
    pub allow_writes: bool,
    /// A migrations folder: each area's state on the health page.
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// A Git backup repository: each key's and object's changes in it, restore as of
    /// a commit (the plan shown first), its last commit and lag on the health page.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// The search index folder (default as for `strata search`).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// The sentence-embedding model's folder (as for `strata search --model`): the
    /// search page can then search by meaning, or by words and meaning together.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}
