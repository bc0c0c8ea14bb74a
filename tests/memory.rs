//! Memory stays bounded under a flood from thousands of source ports: the
//! server binary's peak resident set (VmHWM) stays below the documented
//! bound, and its final counters still balance.

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{self, server_proc, PATIENCE, V4};
use socket2::{Domain, Protocol, Socket, Type};

const QUEUE: u64 = 256;
const WORKERS: u64 = 2;
/// Datagrams each system call may read, and each worker may take at once.
const BATCH: u64 = 32;
const SOURCES: usize = 2_000;
const PAYLOAD: usize = 8 * 1024;
const FLOOD_FOR: Duration = Duration::from_secs(3);
const MAX_DATAGRAMS: u64 = 3_000_000;
/// What the server needs besides its datagram buffers: code, stacks, the
/// allocator, the queue's slots, the workers' reply buffers.
const OVERHEAD: u64 = 64 << 20;

/// 2,000 sockets, each with the smallest receive buffer, so the replies
/// the flood draws are dropped by the kernel rather than piling up.
fn sources() -> Vec<UdpSocket> {
    (0..SOURCES)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.set_recv_buffer_size(1).unwrap();
            s.bind(&SocketAddr::new(V4, 0).into()).unwrap();
            s.into()
        })
        .collect()
}

/// Floods a server started with `extra` arguments, reads its peak RSS,
/// stops it with SIGTERM and checks its counters. Returns (VmHWM, bound).
fn flood_and_measure(max_datagram: u64, extra: &[&str]) -> (u64, u64) {
    let (queue, workers) = (QUEUE.to_string(), WORKERS.to_string());
    let mut args = vec![
        "--bind",
        "127.0.0.1:0",
        "--queue",
        &queue,
        "--workers",
        &workers,
    ];
    args.extend_from_slice(extra);
    let (mut server, port) = server_proc(&args);
    support::wait_signal_handlers(server.pid());
    let addr = SocketAddr::new(V4, port);
    let sockets = sources();

    let started = Instant::now();
    let payload = vec![b'm'; PAYLOAD];
    let halves: Vec<Vec<UdpSocket>> = {
        let mut it = sockets.into_iter();
        let first: Vec<_> = it.by_ref().take(SOURCES / 2).collect();
        vec![first, it.collect()]
    };
    let senders: Vec<_> = halves
        .into_iter()
        .map(|socks| {
            let payload = payload.clone();
            thread::spawn(move || {
                let mut sent = 0u64;
                'flood: loop {
                    for s in &socks {
                        if sent >= MAX_DATAGRAMS / 2 || started.elapsed() >= FLOOD_FOR {
                            break 'flood;
                        }
                        if s.send_to(&payload, addr).is_ok() {
                            sent += 1;
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let sent: u64 = senders
        .into_iter()
        .map(|t| support::join_within(t, FLOOD_FOR + PATIENCE, "sender"))
        .sum();

    let peak = server.peak_rss();
    let stats = server.stop();
    assert!(
        stats.received > 0 && stats.received <= sent,
        "sent {sent}; {stats}"
    );
    assert!(stats.is_balanced(), "{stats}");
    assert_eq!(stats.worker_panics, 0, "{stats}");

    let bound = (QUEUE + (WORKERS + 1) * BATCH) * (max_datagram + 1) + OVERHEAD;
    eprintln!(
        "--max-datagram {max_datagram}: sent {sent} datagrams of {PAYLOAD} bytes from {SOURCES} \
         ports; VmHWM {} KiB, bound {} KiB; {stats}",
        peak / 1024,
        bound / 1024
    );
    (peak, bound)
}

#[test]
fn capped() {
    let (peak, bound) = flood_and_measure(8_192, &["--max-datagram", "8192"]);
    assert!(
        peak <= bound,
        "VmHWM {peak} bytes over the bound of {bound}"
    );
}

#[test]
fn default_max_datagram() {
    let (peak, bound) = flood_and_measure(udp_greeter::MAX_DATAGRAM as u64, &[]);
    assert!(
        peak <= bound,
        "VmHWM {peak} bytes over the bound of {bound}"
    );
}

/// A burst of the largest requests through 64 workers: each greeting is a
/// 65,507-byte datagram, so while a worker answers a batch its reply
/// buffers hold up to 32 of them (shrunk back after the batch). The peak
/// stays within the documented bound, which counts those replies beside
/// the request buffers.
#[test]
fn largest_replies_through_64_workers() {
    const WORKERS: u64 = 64;
    const BURST: usize = 3_000;
    let (queue, workers) = (QUEUE.to_string(), WORKERS.to_string());
    let (mut server, port) = server_proc(&[
        "--bind",
        "127.0.0.1:0",
        "--queue",
        &queue,
        "--workers",
        &workers,
        "--log-requests=false",
    ]);
    support::wait_signal_handlers(server.pid());
    let addr = SocketAddr::new(V4, port);
    // The replies are not wanted: the smallest receive buffer drops them.
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_recv_buffer_size(1).unwrap();
    s.bind(&SocketAddr::new(V4, 0).into()).unwrap();
    let sock: UdpSocket = s.into();
    let payload = vec![b'm'; udp_greeter::MAX_GREETABLE];
    let mut sent = 0u64;
    // In bursts of 100 (6.5 MB), which the server's receive buffer holds.
    for i in 0..BURST {
        sent += u64::from(sock.send_to(&payload, addr).is_ok());
        if i % 100 == 99 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    thread::sleep(Duration::from_millis(500));
    let peak = server.peak_rss();
    let stats = server.stop();
    assert!(
        stats.replied > 0 && stats.received <= sent,
        "sent {sent}; {stats}"
    );
    assert!(stats.is_balanced(), "{stats}");
    let max = udp_greeter::MAX_DATAGRAM as u64;
    let requests = (QUEUE + (WORKERS + 1) * BATCH) * (max + 1);
    let replies = WORKERS * BATCH * max;
    let bound = requests + replies + OVERHEAD;
    eprintln!(
        "{sent} requests of {} bytes through {WORKERS} workers: VmHWM {} KiB, bound {} KiB; {stats}",
        payload.len(),
        peak / 1024,
        bound / 1024
    );
    assert!(
        peak <= bound,
        "VmHWM {peak} bytes over the bound of {bound}"
    );
}
