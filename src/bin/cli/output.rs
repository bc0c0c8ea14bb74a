//! Lines on stderr and the end of a failed write to stdout: what both
//! binaries say, said the same way.

use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

/// Reports a bad command-line value the way clap does, and exits 2.
pub fn fail(message: &str) -> ! {
    let _ = writeln!(io::stderr(), "error: {message}");
    std::process::exit(2)
}

/// Writes an error line to stderr; a closed stderr cannot be told anything.
pub fn error(message: impl Display) {
    let _ = writeln!(io::stderr().lock(), "error: {message}");
}

/// Writes a line to stderr as it is; a closed stderr cannot be told anything.
pub fn say(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// What a write to stdout that failed should end with: a closed pipe (the
/// reader has all it wanted, as with `| head`) is a quiet success.
pub fn stdout_failed(e: &io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    error(format_args!("cannot write to stdout: {e}"));
    ExitCode::from(1)
}
