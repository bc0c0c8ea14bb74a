// Servers in-process and as the binaries, sockets, floods, other programs,
// HTTP and JSON, and waits that are always bounded.
mod support;

// The socket handed to a child as descriptor 3 and taken there; sd_notify;
// why shutting the reading side breaks every copy of a socket.
#[cfg(target_os = "linux")]
mod activation;
// The load generator behind `udp-greeter-client bench`, and its command line.
mod bench_client;
// The tests' own guard: what a test starts, even a grandchild, ends with it.
#[cfg(target_os = "linux")]
mod cleanup;
// Floods, rate limits, oversize datagrams and panics at once, then a shutdown.
mod chaos;
// The client binary's command line, and its errors against wrong servers.
mod client_cli;
// A service of one's own on the engine: per-worker handlers, factories,
// given sockets, failures, loop rules, a dropped server's port.
mod engine;
// The greeting, byte for byte, in-process and from binary to binary.
mod greeting;
// Hostile and odd input: each datagram settled exactly once.
mod hostile;
// An idle server binary uses no CPU.
#[cfg(target_os = "linux")]
mod idle;
// The tutorial's Python client and server against ours.
mod interop;
// The loop guard: greetings and the server's own port get no reply.
mod loops;
// What the server's log says, at the levels an operator picks.
mod logging;
// The client and the bench through random loss (root, ip and nft; ignored).
#[cfg(target_os = "linux")]
mod lossy;
// Peak memory of the server binary under a flood from many source ports.
#[cfg(target_os = "linux")]
mod memory;
// The Prometheus endpoint.
mod metrics;
// What an operator meets: signals, the journal, process metrics, --help,
// log-file failures, numbers and addresses refused in words, a safe
// terminal, man page and completions.
mod operator;
// The pool: a handler that takes its time holds up only its own request.
mod pool;
// The bench as a latency and loss probe: honest figures, any echo service.
mod probe;
// A full queue: the datagram dropped, or left in the socket until there is
// room.
mod queue_full;
// Several instances behind one address: SO_REUSEPORT, and nginx (ignored).
mod scale_out;
// The server binary's command line and environment, its signals, its docs.
mod server_cli;
// State shared by every worker: the kv_store example's one SET seen by
// every GET, whichever worker takes it.
mod shared_state;
// The slow_greeter example: a pool of workers whose handler sleeps.
mod slow_greeter;
// Under a service manager, in-process: sd_notify, the watchdog's probe, a
// socket that serves the next server.
#[cfg(target_os = "linux")]
mod service;
// Graceful shutdown, in-process and of the server binary under signals.
mod shutdown;
// Replies from the address each request was sent to, on wildcard binds.
mod source_address;
// Many client threads at once, every reply checked.
mod stress;
// The shipped systemd unit (`systemd-analyze verify` is ignored).
mod systemd;
// The unit under a real systemd in a container, and systemd-socket-activate
// (root, debootstrap and systemd-nspawn; ignored).
#[cfg(target_os = "linux")]
mod systemd_live;
// docs/tutorial.md: every block it marks with a source is that file's
// own lines, unchanged and in order; the examples it runs exist.
mod tutorial;
// The server binary under a service manager: the socket passed, sd_notify,
// the watchdog; upgrades in place on SIGUSR2, and one that fails.
#[cfg(target_os = "linux")]
mod upgrade;
