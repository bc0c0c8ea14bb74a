//! The simplest fast server, as a baseline for `benches/compare.sh`: one
//! thread, one `recv_from`/`send_to` loop, buffers reused. A request's
//! `--block-us`/`--spin-us` work runs inline, so one slow request holds up
//! every other.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_std -- --bind 127.0.0.1:0 [--block-us U] [--spin-us U]
//! ```

use std::process::ExitCode;

use udp_greeter_baselines::{serve, Args, Flags};

fn main() -> ExitCode {
    let Args { bind, work, .. } = match Args::from_env("baseline_std", Flags::Common) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let socket = match udp_greeter_baselines::bind(bind) {
        Ok(s) => s,
        Err(code) => return code,
    };
    serve(&socket, work)
}
