//! What `--help` shows beyond the doc comments: an EXAMPLES section on every command,
//! the store's connection options once (on `strata --help`, under their heading)
//! rather than twenty lines on every subcommand, and no `--store` on the commands
//! that take `--from`/`--to` instead.

use clap::CommandFactory;

/// The connection options, shown on `strata --help` only (they still work anywhere).
const CONNECTION: &[&str] = &[
    "endpoints",
    "user",
    "password",
    "cacert",
    "cert",
    "key_file",
    "dial_timeout",
    "command_timeout",
    "max_txn_ops",
    "v2_ttl",
];

/// Commands that open their stores from `--from`/`--to`, where `--store` means nothing.
const TWO_STORES: &[&str] = &["copy", "mirror", "diff"];

/// The command line as parsed and as `--help` shows it.
pub fn command() -> clap::Command {
    let mut root = super::Cli::command();
    // clap copies the global options into every subcommand when it builds them; a
    // hidden copy put there first is kept instead (mutating a built command would
    // leave clap's lookup tables stale).
    let globals: Vec<clap::Arg> = root
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let names: Vec<String> = root
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in names {
        root = root.mut_subcommand(&name, |sub| tune(sub, &name, &globals));
    }
    root.after_help(
        "The etcd connection options above apply to every command (etcdctl's ETCDCTL_* \
         variables are read too); each command's own help leaves them out.\n\n\
         EXAMPLES:\n  strata load examples/sigilgate/expected.json\n  strata ls /sigilgate\n  \
         strata --endpoints 127.0.0.1:2379 status\n  strata help get",
    )
}

fn tune(mut sub: clap::Command, path: &str, globals: &[clap::Arg]) -> clap::Command {
    for arg in globals {
        let id = arg.get_id().as_str();
        let hide = CONNECTION.contains(&id)
            || (TWO_STORES.contains(&path) && matches!(id, "store" | "create"));
        if hide {
            sub = sub.arg(arg.clone().hide(true));
        }
    }
    let children: Vec<String> = sub
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for child in children {
        let full = format!("{path} {child}");
        sub = sub.mut_subcommand(&child, |c| tune(c, &full, globals));
    }
    match examples(path) {
        Some(text) => sub.after_help(format!(
            "EXAMPLES:\n{text}\n\nConnection options (--endpoints, --user, --cacert, …): strata --help"
        )),
        None => sub,
    }
}

/// The EXAMPLES of one command, by its path (`get`, `backup run`).
fn examples(path: &str) -> Option<&'static str> {
    Some(match path {
        "get" => "  strata get /sigilgate/users/1/status            # the value, as is
  strata get --prefix /sigilgate/nodes/ --keys-only
  strata get /sigilgate/users/1/status --rev 300  # as of revision 300
  strata get --prefix /sigilgate/ -o json | jq '.kvs | length'",
        "put" => "  strata put /sigilgate/users/1/status active
  echo -n '{\"a\":1}' | strata put /doc -",
        "del" => "  strata del /sigilgate/users/1/status
  strata del --prefix /sigilgate/old/ --dry-run   # what would go
  strata del --prefix /sigilgate/old/ --yes       # in a script",
        "ls" => "  strata ls /                # top level, with key counts
  strata ls /sigilgate/users -o json",
        "tree" => "  strata tree /sigilgate/nodes
  strata tree /sigilgate/nodes --width 0 -o json",
        "cas" => "  strata cas /locks/backup me --expect-absent    # create once
  strata cas /counter 8 --expect-version 7",
        "cad" => "  strata cad /locks/backup --expect-value me",
        "txn" => "  strata txn change.json
  echo '{\"compare\":[{\"key\":\"/a\",\"absent\":true}],\"success\":[{\"put\":{\"key\":\"/a\",\"value\":\"1\"}}]}' | strata txn -",
        "history" => "  strata history /sigilgate/users/1/status
  strata history /sigilgate/users/1/status -o json",
        "watch" => "  strata watch /sigilgate/users/1/status          # one key
  strata watch --prefix /sigilgate/                # a subtree
  strata watch --prefix /sigilgate/ --from-rev 350 --count 10 -o json",
        "compact" => "  strata compact 350          # says what goes and asks
  strata compact 350 --yes    # in a script",
        "export" => "  strata export > all.json
  strata export --prefix /public/ --out public.json -o json",
        "load" => "  strata load examples/sigilgate/expected.json
  strata load all.json --batch 500 -o json",
        "import" => "  strata import examples/sigilgate/legacy --mapping examples/sigilgate/mapping.toml --dry-run
  strata import examples/sigilgate/legacy --mapping examples/sigilgate/mapping.toml --out out.json
  strata import dump.json --format etcd-v2 --schema schema.toml",
        "copy" => "  strata copy --from sqlite:old.db --to etcd://127.0.0.1:2379 --dry-run
  strata copy --from etcd://10.0.0.1:2379 --to postgres://strata@db/meta --prefix /fiberlb/",
        "mirror" => "  strata mirror --from sqlite:./strata.db --to etcd://127.0.0.1:2379 --prefix /sigilgate/
  strata mirror --from etcd://a:2379 --to etcd://b:2379 --metrics 127.0.0.1:9464",
        "diff" => "  strata diff --from sqlite:./strata.db --to etcd://127.0.0.1:2379 --prefix /sigilgate/",
        "status" => "  strata status
  strata --endpoints 10.0.0.1:2379,10.0.0.2:2379 status -o json",
        "edit" => "  strata edit /sigilgate/nodes/10.20.0.20/config
  EDITOR=nano strata edit /doc",
        "config check" => "  strata config check                      # ./strata.toml, or the user's
  strata --config /etc/strata/strata.toml config check -o json",
        "completions" => "  strata completions bash > ~/.local/share/bash-completion/completions/strata
  strata completions zsh > \"${fpath[1]}/_strata\"
  strata completions fish > ~/.config/fish/completions/strata.fish",
        "man" => "  strata man > strata.1 && man ./strata.1
  strata man --dir /usr/local/share/man/man1      # one page per command",
        "object get" => "  strata object get /sigilgate/users/7 --schema examples/sigilgate/schema.toml",
        "object create" => "  strata object create /sigilgate/users/900 user.json --schema schema.toml",
        "object set" => "  strata object set /sigilgate/users/7 status blocked --schema schema.toml",
        "object delete" => "  strata object delete /sigilgate/users/7 --schema schema.toml",
        "search" => "  strata search \"grace hopper\"                      # words anywhere, ranked
  strata search hoppr --schema examples/sigilgate/schema.toml      # a typo; hits are objects
  strata search 'status:blocked entity:user' --schema examples/sigilgate/schema.toml
  strata search 10.20.0.20 --prefix /sigilgate/routes/ -o json
  strata search --watch --schema examples/sigilgate/schema.toml    # keep the index current",
        "ui" => "  strata ui --schema examples/sigilgate/schema.toml        # http://127.0.0.1:8420/
  strata ui --listen 0.0.0.0:8420 --token /etc/strata/ui-token --schema schema.toml",
        "refs" => "  strata refs /sigilgate/nodes/10.20.0.20 --schema examples/sigilgate/schema.toml",
        "schema check" => "  strata schema check --schema examples/sigilgate/schema.toml
  strata schema check --schema schema.toml --prefix /sigilgate/ -o json",
        "schema infer" => "  strata schema infer --prefix /sigilgate/ > schema.toml",
        "schema doc" => "  strata schema doc --schema schema.toml --live > SCHEMA.md",
        "backup run" => "  strata backup run --repo backup.git
  strata backup run --repo backup.git --schema schema.toml --push origin -o json",
        "backup watch" => "  strata backup watch --repo backup.git --debounce 5 --metrics 127.0.0.1:9464",
        "backup log" => "  strata backup log /sigilgate/users/7 --repo backup.git",
        "backup diff" => "  strata backup diff HEAD~1 HEAD --repo backup.git
  strata backup diff 2026-11-24 2026-11-25 --repo backup.git",
        "backup restore" => "  strata backup restore /sigilgate/users/7 --repo backup.git --at HEAD~1 --dry-run
  strata backup restore /sigilgate/users/7 --repo backup.git --at 2026-11-24T08:00:00Z
  strata backup restore --all --repo backup.git --to sqlite:rebuilt.db",
        "backup verify" => "  strata backup verify --repo backup.git",
        "migrate status" => "  strata migrate status --dir examples/sigilgate/migrations",
        "migrate plan" => "  strata migrate plan --dir examples/sigilgate/migrations --schema schema.toml",
        "migrate up" => "  strata migrate up --dir examples/sigilgate/migrations      # shows the plan, asks
  strata migrate up --yes --wait 60                         # in a deploy script",
        "migrate verify" => "  strata migrate verify --dir examples/sigilgate/migrations",
        "migrate new" => "  strata migrate new users move_plan     # then edit the file it names",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand has examples, so a new one cannot ship without.
    #[test]
    fn every_command_has_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let full = if path.is_empty() {
                    sub.get_name().to_owned()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                if sub.get_subcommands().next().is_none() && examples(&full).is_none() {
                    missing.push(full.clone());
                }
                walk(sub, &full, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no EXAMPLES for: {missing:?}");
    }
}
