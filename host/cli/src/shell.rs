//! Shell integration: `distlog completions <SHELL>` (clap_complete) and `distlog man`
//! (clap_mangen), both generated from the same clap definition as `--help`, so they never
//! drift from the flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_complete::Shell;

/// Flags of `distlog completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `distlog man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand (distlog.1, distlog-topic.1,
    /// distlog-topic-create.1, ...) into DIR instead of printing distlog(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` to stdout.
pub fn completions(mut cmd: Command, args: &CompletionsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "distlog", &mut out);
    out.flush()?;
    Ok(())
}

/// Prints distlog(1) as roff to stdout, or writes every page into `--out`; returns the
/// pages written.
pub fn man(cmd: Command, args: &ManArgs) -> Result<Vec<PathBuf>> {
    match &args.out {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)?;
            out.flush()?;
            Ok(Vec::new())
        }
        Some(dir) => write_pages(cmd, dir),
    }
}

fn write_pages(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    fn walk(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, written)?;
        }
        let page = clap_mangen::Man::new(cmd.clone());
        let path = page
            .generate_to(dir)
            .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
        written.push(path);
        Ok(())
    }
    walk(&cmd, dir, &mut written)?;
    written.sort();
    Ok(written)
}
