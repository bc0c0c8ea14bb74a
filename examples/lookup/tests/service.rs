use std::time::Duration;

use udp_greeter::{Answer, Handler, Request, Server};
use udp_greeter_lookup::Lookup;

use crate::support::{ask, client, config, counters_when, TempDb, PATIENCE};

/// Starts a lookup server on `db` with `workers` workers.
fn serve(db: &TempDb, workers: usize) -> Server {
    let path = db.path.clone();
    Server::builder(config(workers))
        .handler_factory(move |_| Lookup::open(&path))
        .start()
        .expect("start the server")
}

#[test]
fn a_key_gets_its_value_and_a_missing_key_an_empty_reply() {
    let db = TempDb::with_rows("values", 3);
    let server = serve(&db, 2);
    let socket = client(server.local_addr());

    assert_eq!(
        ask(&socket, b"key-1", PATIENCE).as_deref(),
        Some(&b"value-1"[..])
    );
    assert_eq!(ask(&socket, b"key-3", PATIENCE).as_deref(), Some(&b""[..]));
    // An empty datagram is the service's own "not found": refused unread.
    socket.send(b"").expect("send");
    // Its reply shows the empty datagram was read: the socket is in order.
    assert_eq!(
        ask(&socket, b"key-2", PATIENCE).as_deref(),
        Some(&b"value-2"[..])
    );

    let stats = server.shutdown().expect("shut down");
    assert_eq!(
        (stats.received, stats.replied, stats.dropped_loop),
        (4, 3, 1),
        "{stats}"
    );
    assert_eq!((stats.declined, stats.handler_failed), (0, 0), "{stats}");
}

#[test]
fn a_broken_database_fails_the_lookup_and_sends_nothing() {
    let db = TempDb::with_rows("broken", 2);
    let other = db.connect();
    // A value that is no bytes: the lookup cannot answer with it.
    other
        .execute("INSERT INTO kv VALUES (CAST('number' AS BLOB), 42)", [])
        .expect("insert");
    let server = serve(&db, 1);
    let socket = client(server.local_addr());
    assert_eq!(
        ask(&socket, b"key-0", PATIENCE).as_deref(),
        Some(&b"value-0"[..])
    );

    socket.send(b"number").expect("send");
    counters_when(&server, |s| s.handler_failed == 1);
    // The table gone, from another connection, under the server's feet.
    other.execute("DROP TABLE kv", []).expect("drop the table");
    socket.send(b"key-0").expect("send");
    counters_when(&server, |s| s.handler_failed == 2);
    assert_eq!(ask(&socket, b"key-1", Duration::from_millis(50)), None);

    let stats = server.shutdown().expect("shut down");
    assert_eq!((stats.replied, stats.handler_failed), (1, 3), "{stats}");
}

#[test]
fn a_database_that_cannot_be_opened_fails_the_start() {
    let missing = TempDb::new("missing");
    let err = Server::builder(config(2))
        .handler_factory({
            let path = missing.path.clone();
            move |_| Lookup::open(&path)
        })
        .start()
        .expect_err("a missing file is no database");
    let expected = format!(
        "cannot make the handler of worker-0: cannot open {}: unable to open database file",
        missing.path.display()
    );
    assert_eq!(err.to_string(), expected);
    assert!(!missing.path.exists(), "opening must not create the file");

    // A file, but not one with the table.
    let empty = TempDb::new("empty");
    drop(empty.connect().execute("CREATE TABLE other (x)", []));
    let err = Lookup::open(&empty.path).expect_err("no kv table");
    assert!(err.to_string().ends_with(": no such table: kv"), "{err}");
}

#[test]
fn each_worker_gets_a_connection_of_its_own() {
    let db = TempDb::with_rows("workers", 1);
    let path = db.path.clone();
    let mut made = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::builder(config(3))
        .handler_factory(move |worker| {
            let _ = tx.send(worker);
            Lookup::open(&path)
        })
        .start()
        .expect("start");
    made.extend(rx.try_iter());
    assert_eq!(made, [0, 1, 2]);
    server.shutdown().expect("shut down");
}

#[test]
fn the_delay_comes_before_each_query() {
    let db = TempDb::with_rows("delay", 1);
    let mut lookup = Lookup::open(&db.path)
        .expect("open")
        .delay(Duration::from_millis(20));
    let peer = "127.0.0.1:5".parse().expect("address");
    let mut reply = Vec::new();
    let started = std::time::Instant::now();
    let answer = lookup.respond(&Request::new(b"key-0", peer, peer), &mut reply);
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!((answer, &reply[..]), (Answer::Reply, &b"value-0"[..]));
}
