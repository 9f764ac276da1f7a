//! Which store the command uses and where its URL came from: `--store`, then
//! `STRATA_STORE`, then `--endpoints` / `ETCDCTL_ENDPOINTS`, then the config file's
//! `default` or else its layered keyspace (`layers:FILE`, when it has `[layers]`),
//! then `sqlite:./strata.db`. `--store` and `STRATA_STORE` take a URL or
//! the name of a `[stores.NAME]` of the config file (found as `--config FILE`, else
//! `STRATA_CONFIG`, else `./strata.toml`, else the user's config folder), whose
//! connection options fill in what the command line leaves out. The source is kept so
//! that messages and `strata status` can say it; turning an endpoint list into a
//! store URL is `strata_store::StoreUrl::from_endpoints`'s, reading the config file
//! `strata_store::config`'s.

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::cli::StoreOpts;

/// Where the store URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreSource {
    /// `--store URL`.
    Flag,
    /// `STRATA_STORE`.
    Env,
    /// `--endpoints URLS`.
    EndpointsFlag,
    /// `ETCDCTL_ENDPOINTS`.
    EndpointsEnv,
    /// The config file: its `default = "NAME"`, else its `[layers]`.
    Config,
    /// None of them: `sqlite:./strata.db`.
    #[default]
    Default,
}

impl StoreSource {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            StoreSource::Flag => "--store",
            StoreSource::Env => "STRATA_STORE",
            StoreSource::EndpointsFlag => "--endpoints",
            StoreSource::EndpointsEnv => "ETCDCTL_ENDPOINTS",
            StoreSource::Config => "the config file",
            StoreSource::Default => "the default",
        }
    }
}

impl std::fmt::Display for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The config file: `--config FILE` (or `STRATA_CONFIG`), which must exist, else
/// `./strata.toml`, else `strata/strata.toml` in the user's config folder
/// (`$XDG_CONFIG_HOME`, else `~/.config`), when they exist.
pub fn find_config(given: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    if let Some(path) = given {
        return Some(path.to_owned());
    }
    let here = std::path::PathBuf::from("strata.toml");
    if here.is_file() {
        return Some(here);
    }
    let home_config = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
        })?;
    let user = home_config.join("strata").join("strata.toml");
    user.is_file().then_some(user)
}

/// Whether `--store`'s value names a store of the config file rather than a URL.
pub fn is_store_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Settles `opts.store` and `opts.source` from what clap saw. `matches` is the
/// top-level match (global arguments are propagated to it).
pub fn resolve(opts: &mut StoreOpts, matches: &ArgMatches) -> anyhow::Result<()> {
    let from = |id: &str| matches.value_source(id);
    let from_endpoints = |opts: &mut StoreOpts, source| -> anyhow::Result<()> {
        let list = opts.endpoints.as_deref().unwrap_or_default();
        let (url, tls) = strata_store::StoreUrl::from_endpoints(list)?;
        opts.store = url;
        opts.tls = tls;
        opts.source = source;
        Ok(())
    };
    match (from("store"), from("endpoints")) {
        (Some(ValueSource::CommandLine), _) => opts.source = StoreSource::Flag,
        (Some(ValueSource::EnvVariable), _) => opts.source = StoreSource::Env,
        (_, Some(ValueSource::CommandLine)) => from_endpoints(opts, StoreSource::EndpointsFlag)?,
        (_, Some(ValueSource::EnvVariable)) => from_endpoints(opts, StoreSource::EndpointsEnv)?,
        _ => opts.source = StoreSource::Default,
    }
    // The file is read only when it is needed: a URL given outright does not depend
    // on it (nor on a mistake in it).
    let needed = opts.source == StoreSource::Default
        || (matches!(opts.source, StoreSource::Flag | StoreSource::Env)
            && is_store_name(&opts.store));
    let path = find_config(opts.config.as_deref()).filter(|_| needed);
    let config = match &path {
        Some(path) => Some(strata_store::config::Config::load(path)?),
        None => None,
    };
    if opts.source == StoreSource::Default {
        if let Some(config) = &config {
            // The file's `default`, else its layered keyspace when it has layers.
            if let Some(default) = config.default.clone() {
                opts.store = default;
                opts.source = StoreSource::Config;
            } else if !config.layers.is_empty() {
                opts.store = format!("layers:{}", config.path.display());
                opts.source = StoreSource::Config;
            }
        }
    }
    let named = matches!(
        opts.source,
        StoreSource::Flag | StoreSource::Env | StoreSource::Config
    ) && is_store_name(&opts.store);
    if named {
        let Some(config) = &config else {
            anyhow::bail!(
                "{} {:?} names a store, but there is no config file (looked for ./strata.toml \
                 and the user's strata/strata.toml; --config FILE names one); give a store URL \
                 such as sqlite:PATH or etcd://HOST:PORT, or define [stores.{}]",
                opts.source.name(),
                opts.store,
                opts.store
            );
        };
        let Some(store) = config.store(&opts.store) else {
            anyhow::bail!(
                "{} {:?}: {} has no [stores.{}]; it has: {}",
                opts.source.name(),
                opts.store,
                config.path.display(),
                opts.store,
                config.stores.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        apply(opts, store);
    }
    Ok(())
}

/// The options for a second store given as `--from`/`--to` (`value`: a URL or a
/// store name of the config file). A name brings its own URL and options; the
/// command line's connection flags still win, unless they are `--store NAME`'s.
pub fn other_store(opts: &StoreOpts, value: &str, given_by: &str) -> anyhow::Result<StoreOpts> {
    let mut other = opts.clone();
    other.store = value.to_owned();
    other.store_name = None;
    if !is_store_name(value) {
        return Ok(other);
    }
    let path = find_config(opts.config.as_deref()).ok_or_else(|| {
        anyhow::anyhow!(
            "{given_by} {value:?} names a store, but there is no config file (looked for \
             ./strata.toml and the user's strata/strata.toml; --config FILE names one)"
        )
    })?;
    let config = strata_store::config::Config::load(&path)?;
    let store = config.store(value).ok_or_else(|| {
        anyhow::anyhow!(
            "{given_by} {value:?}: {} has no [stores.{value}]; it has: {}",
            config.path.display(),
            config.stores.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    if opts.store_name.is_some() {
        // The flags were filled from --store's entry: none of them is this store's.
        other.user = None;
        other.password = None;
        other.cacert = None;
        other.cert = None;
        other.key_file = None;
        other.dial_timeout = None;
        other.command_timeout = None;
        other.max_txn_ops = None;
        other.v2_ttl = None;
        other.tls = false;
    }
    apply(&mut other, store);
    Ok(other)
}

/// A named store's URL, and its connection options where the command line gave none.
fn apply(opts: &mut StoreOpts, store: &strata_store::config::NamedStore) {
    let o = &store.options;
    opts.store_name = Some(store.name.clone());
    opts.store = store.url.clone();
    opts.tls |= o.tls;
    opts.user = opts.user.take().or_else(|| o.user.clone());
    opts.password = opts.password.take().or_else(|| o.password.clone());
    opts.cacert = opts.cacert.take().or_else(|| o.ca_cert.clone());
    opts.cert = opts.cert.take().or_else(|| o.cert.clone());
    opts.key_file = opts.key_file.take().or_else(|| o.key.clone());
    opts.dial_timeout = opts.dial_timeout.or(o.dial_timeout);
    opts.command_timeout = opts.command_timeout.or(o.request_timeout);
    opts.max_txn_ops = opts.max_txn_ops.or(o.max_txn_ops);
    if opts.v2_ttl.is_none() && o.v2_ttl != strata_store::V2Ttl::default() {
        opts.v2_ttl = Some(o.v2_ttl);
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::Cli;

    fn resolved(args: &[&str]) -> StoreOpts {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        resolve(&mut cli.store, &matches).unwrap();
        cli.store
    }

    /// The command line wins over the environment, which the test cannot set safely
    /// (other tests run in parallel); the environment's order is in
    /// tests/store_resolution.rs.
    #[test]
    fn flags_resolve_in_the_documented_order() {
        let o = resolved(&[
            "strata",
            "--store",
            "sqlite:a.db",
            "--endpoints",
            "h:1",
            "ls",
        ]);
        assert_eq!(
            (o.store.as_str(), o.source),
            ("sqlite:a.db", StoreSource::Flag)
        );
        if std::env::var_os("STRATA_STORE").is_some() {
            return; // it would win over --endpoints, as documented
        }
        let o = resolved(&["strata", "ls", "--endpoints", "https://h:1,https://g:2"]);
        assert_eq!(o.store, "etcd://h:1,g:2");
        assert!(o.tls && o.source == StoreSource::EndpointsFlag);
    }
}
