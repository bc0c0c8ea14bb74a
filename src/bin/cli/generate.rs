//! `--generate`, which both binaries take: a man page or a shell
//! completion script, made from the same clap definitions as `--help`, so
//! the two cannot drift apart.

use std::io::{self, Write};

use clap::builder::EnumValueParser;
use clap::{Arg, Command, CommandFactory, ValueEnum};
use clap_complete::Shell;

use super::output;

/// The id of `--generate`, which both binaries take.
pub(super) const GENERATE: &str = "generate";

/// What `--generate` prints: a man page (roff), or a completion script
/// for bash, zsh or fish.
// No doc comments on the variants: clap would show them, and a value with
// help turns all of `--help` into its long, many-line form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Generate {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

/// `P`'s command with what both binaries add: `--generate`.
pub(super) fn base<P: CommandFactory>() -> Command {
    P::command().arg(
        Arg::new(GENERATE)
            .long(GENERATE)
            .value_name("KIND")
            .value_parser(EnumValueParser::<Generate>::new())
            .help("Print a man page or a shell completion script, and exit"),
    )
}

/// `P`'s command for a man page or completions: the variables named, with
/// no value of the machine that made them.
pub(super) fn docs<P: CommandFactory>() -> Command {
    base::<P>().mut_args(|arg| arg.hide_env_values(true))
}

/// Prints what `kind` asks for, made from `cmd`, and ends the process: 0,
/// or 1 when stdout cannot take it (quietly 0 for a closed pipe).
pub(super) fn generate(kind: Generate, mut cmd: Command) -> ! {
    let name = cmd.get_name().to_string();
    let mut text = Vec::new();
    let shell = match kind {
        Generate::Man => None,
        Generate::CompleteBash => Some(Shell::Bash),
        Generate::CompleteZsh => Some(Shell::Zsh),
        Generate::CompleteFish => Some(Shell::Fish),
    };
    let made = match shell {
        None => clap_mangen::Man::new(cmd).render(&mut text),
        Some(shell) => {
            clap_complete::generate(shell, &mut cmd, name, &mut text);
            Ok(())
        }
    };
    let written = made.and_then(|()| {
        let mut out = io::stdout().lock();
        out.write_all(&text)?;
        out.flush()
    });
    match written {
        Ok(()) => std::process::exit(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            output::error(format_args!("cannot write to stdout: {e}"));
            std::process::exit(1)
        }
    }
}
