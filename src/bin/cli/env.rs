//! The command line with its environment: each option's `UDP_GREETER_*`
//! variable read first and checked under its own name, and shown in
//! `--help` where it belongs.

use std::error::Error as _;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches};

use super::generate::{base, docs, generate, Generate, GENERATE};
use super::output::fail;

/// `P`'s command as `--help` shows it: each option's variable right after
/// its text, then its default, whether clap or the text gives the default.
///
/// clap puts `[env: ...]` after the text, where some options already end
/// with a `[default: ...]` in words (one that is no single value): the two
/// would swap places between options. The variable is written into the
/// text instead, in clap's own form (with the value it has now), and
/// clap's is hidden; clap still reads it.
fn command<P: CommandFactory>() -> Command {
    base::<P>().mut_args(|arg| {
        let Some(var) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else {
            return arg;
        };
        if arg.is_hide_env_set() {
            return arg;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let (text, default) = help.split_at(help.find(" [default: ").unwrap_or(help.len()));
        let value = std::env::var_os(&var).unwrap_or_default();
        let shown = format!("{text} [env: {var}={}]{default}", value.to_string_lossy());
        arg.help(shown).hide_env(true)
    })
}

/// Parses the command line of `P`, with each argument's environment
/// variable read first: an empty one counts as unset, and a bad one is
/// reported under its own name (not the flag's) unless the flag is given,
/// since a flag wins over its variable. `--generate` prints what it asks
/// for and ends the process, as `--help` does.
///
/// The environment itself is left as it is (changing it is unsafe once
/// threads may read it): clap is told not to read the variables that must
/// count as unset.
///
/// Ends the process with exit code 2 on a bad value, as clap does.
pub fn parse<P: CommandFactory + FromArgMatches>() -> P {
    let mut cmd = command::<P>();
    let mut bad = Vec::new();
    let mut unread = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env().map(OsString::from) else {
            continue;
        };
        let Some(value) = std::env::var_os(&var) else {
            continue;
        };
        let id = arg.get_id().to_string();
        if value.is_empty() {
            unread.push(id);
            continue;
        }
        if let Err(reason) = check(arg, &value) {
            // clap must not see it: it would report it under the flag.
            bad.push((
                id.clone(),
                format!(
                    "invalid value '{}' for {}: {reason}",
                    value.to_string_lossy(),
                    var.to_string_lossy()
                ),
            ));
            unread.push(id);
        }
    }
    for id in unread {
        cmd = cmd.mut_arg(id, |a| a.env(None));
    }
    let matches = cmd.get_matches();
    if let Some(kind) = matches.get_one::<Generate>(GENERATE) {
        generate(*kind, docs::<P>());
    }
    for (id, message) in bad {
        if !given(&matches, &id) {
            fail(&message);
        }
    }
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Whether `id` was set on the command line, at the top or in the
/// subcommand (where global arguments land).
fn given(matches: &ArgMatches, id: &str) -> bool {
    let here = matches.ids().any(|i| i == id)
        && matches.value_source(id) == Some(ValueSource::CommandLine);
    here || matches.subcommand().is_some_and(|(_, sub)| given(sub, id))
}

/// Runs `value` through `arg`'s own value parser; the reason if it fails.
fn check(arg: &Arg, value: &OsString) -> Result<(), String> {
    let probe = Command::new("env").no_binary_name(true).arg(
        Arg::new("value")
            .value_parser(arg.get_value_parser().clone())
            .ignore_case(arg.is_ignore_case_set())
            .allow_hyphen_values(true),
    );
    let e = match probe.try_get_matches_from([value]) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if let Some(source) = e.source() {
        return Err(source.to_string());
    }
    if e.kind() == ErrorKind::InvalidValue {
        if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
            return Err(format!("possible values: {}", valid.join(", ")));
        }
    }
    Err(e.kind().to_string())
}
