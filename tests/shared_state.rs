//! State shared by every worker: `examples/kv_store.rs` answers a `GET`
//! from whichever worker takes it with what a `SET` stored through
//! another, and refuses a bad argument with one line and exit code 2.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use crate::support::*;

/// Requests sent at once, so that the queue holds several and more than
/// one worker takes them.
const BURST: usize = 32;

#[test]
fn every_worker_sees_one_set() {
    let mut cmd = command(example("kv_store"));
    cmd.args(["127.0.0.1:0", "4"]);
    // Killed when dropped: it stops only when killed.
    let (_server, port) = server_with(&mut cmd);
    let to = SocketAddr::from((V4, port));
    let sock = socket_for(to);
    assert_eq!(ask(&sock, to, b"GET lang"), b"NOT FOUND");
    assert_eq!(ask(&sock, to, b"SET lang Rust"), b"OK");

    // Bursts of GETs, each with a COUNT in its middle that names the
    // worker taking it, until several workers have been seen at work.
    let deadline = Instant::now() + PATIENCE;
    let mut workers = BTreeSet::new();
    let mut gets = 0;
    while workers.len() < 2 || gets < 8 * BURST {
        assert!(
            Instant::now() < deadline,
            "{gets} GETs, and workers {workers:?} only, within {PATIENCE:?}"
        );
        for i in 0..BURST {
            let request: &[u8] = if i == BURST / 2 {
                b"COUNT"
            } else {
                b"GET lang"
            };
            sock.send_to(request, to).unwrap();
        }
        for _ in 0..BURST {
            let (reply, _) = recv_within(&sock, PATIENCE).expect("a reply to every request");
            let text = String::from_utf8_lossy(&reply).into_owned();
            match text.split_once(" answered ") {
                Some((worker, _)) => {
                    workers.insert(worker.to_string());
                }
                None => {
                    assert_eq!(text, "VALUE Rust", "GET {gets} after the one SET");
                    gets += 1;
                }
            }
        }
    }
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["nowhere"][..],
        &["127.0.0.1:0", "many"],
        &["127.0.0.1:0", "0"],
    ] {
        run_with(command(example("kv_store")).args(args), PATIENCE).refusal(&[]);
    }
}
