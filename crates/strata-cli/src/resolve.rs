//! Which store the command uses and where its URL came from: `--store`, then
//! `STRATA_STORE`, then `--endpoints` / `ETCDCTL_ENDPOINTS`, then the default. The
//! source is kept so that messages and `strata status` can say it; turning an
//! endpoint list into a store URL is `strata_store::StoreUrl::from_endpoints`'s.

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
            StoreSource::Default => "the default",
        }
    }
}

impl std::fmt::Display for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    Ok(())
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
