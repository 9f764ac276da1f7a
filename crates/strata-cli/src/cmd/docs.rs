//! `strata completions SHELL` and `strata man`: shell completion scripts and manual
//! pages, generated from the same definitions as `--help`, so they never drift.

use std::io::Write;

use anyhow::Context;

use crate::cli::{CompletionsArgs, ManArgs};
use crate::Outcome;

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut cmd = crate::cli::help::command();
    let mut out = crate::output::stdout();
    clap_complete::generate(args.shell, &mut cmd, "strata", &mut out);
    out.flush()?;
    Ok(Outcome::Ok)
}

pub fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    let cmd = crate::cli::help::command();
    let Some(dir) = args.dir else {
        let mut out = crate::output::stdout();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        out.flush()?;
        return Ok(Outcome::Ok);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = 0;
    write_pages(&cmd, "strata", &dir, &mut pages)?;
    crate::output::note!("wrote {pages} manual pages into {}", dir.display());
    Ok(Outcome::Ok)
}

/// `strata.1`, then `strata-get.1`, `strata-backup-run.1`, … for every command.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    pages: &mut usize,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_owned())).render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    *pages += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, pages)?;
    }
    Ok(())
}
