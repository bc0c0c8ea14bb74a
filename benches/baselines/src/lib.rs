//! What the baseline servers share: their one command-line option.

use std::net::SocketAddr;
use std::process::ExitCode;

/// The address to bind, from `--bind ADDR` (default 127.0.0.1:9999); a bad
/// command line is one message and exit code 2.
pub fn bind_arg(program: &str) -> Result<SocketAddr, ExitCode> {
    parse(std::env::args().skip(1)).map_err(|msg| {
        eprintln!("error: {msg}\nusage: {program} [--bind ADDR]");
        ExitCode::from(2)
    })
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<SocketAddr, String> {
    let mut bind: SocketAddr = ([127, 0, 0, 1], 9999).into();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                let v = args.next().ok_or("--bind needs an address")?;
                bind = v.parse().map_err(|e| format!("bad address {v:?}: {e}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(bind)
}
