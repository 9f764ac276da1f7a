//! The entry node's lookup, as a service embeds it: open the store by URL, hold
//! `/sigilgate/routes/` (device id → the core node that serves it) in a
//! [`Replica`], and resolve device ids from memory, with no request to the store per
//! lookup.
//!
//! ```text
//! entry-node [--store URL] DEVICE_ID...   resolve these ids, then exit
//! entry-node [--store URL]                resolve one id per line of stdin until EOF
//! ```
//!
//! The store is `--store`, else `STRATA_STORE`, else `sqlite:./strata.db`. Each answer
//! is one line `DEVICE_ID CORE_NODE`. Reading stdin, the replica follows the store
//! meanwhile, so a route changed while the entry node runs is answered new. Exit codes
//! as `strata`'s: 0, 1 on error, 2 on bad arguments, 3 when an id has no route.

use std::process::ExitCode;

use strata_core::replica::Replica;
use strata_core::KeyPath;
use tokio::io::AsyncBufReadExt;

const ROUTES: &str = "/sigilgate/routes";
const USAGE: &str = "usage: entry-node [--store URL] [DEVICE_ID...]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut url = std::env::var("STRATA_STORE")
        .unwrap_or_else(|_| strata_store::DEFAULT_STORE_URL.to_owned());
    let mut devices = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => match args.next() {
                Some(value) => url = value,
                None => {
                    eprintln!("entry-node: --store needs a URL\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => devices.push(arg),
        }
    }
    match run(&url, devices).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("entry-node: {e}");
            ExitCode::from(1)
        }
    }
}

/// Resolves every device; `false` if one has no route.
async fn run(url: &str, devices: Vec<String>) -> Result<bool, Box<dyn std::error::Error>> {
    let store = strata_store::open(url).await?;
    let routes = KeyPath::parse(ROUTES)?;
    let replica = Replica::start(store, routes.subtree_prefix()).await?;
    let resolve = |device: &str| {
        // The id is data: escaped, so that it can never name another level.
        let key = routes.join(device);
        let found = replica.get(key.as_bytes());
        match &found.value {
            Some(route) => println!("{device} {}", String::from_utf8_lossy(&route.value)),
            None => eprintln!(
                "entry-node: device {device} has no route ({key} is absent at revision {})",
                found.revision
            ),
        }
        found.value.is_some()
    };
    let mut all_found = true;
    if devices.is_empty() {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let device = line.trim();
            if !device.is_empty() {
                all_found &= resolve(device);
            }
        }
    } else {
        for device in &devices {
            all_found &= resolve(device);
        }
    }
    Ok(all_found)
}
