//! A key lookup in SQLite, served by udp-greeter's engine: a request is a
//! key, any bytes; the reply is its value, or an empty datagram when the
//! key is not in the table.
//!
//! Each worker owns a [`Lookup`], made by the server's handler factory,
//! and with it a [`Connection`] of its own. A `Connection` is `Send` but
//! not `Sync`: it may move to its worker's thread, it may not be shared
//! between threads. Since no two threads ever touch the same one, no
//! `Mutex` is needed, and SQLite's own locking per connection is turned
//! off too.
//!
//! ```no_run
//! use udp_greeter::{Config, Server};
//! use udp_greeter_lookup::Lookup;
//!
//! let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
//!     .handler_factory(|_worker| Lookup::open("lookup.db"))
//!     .start()?;
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use udp_greeter::{Answer, Handler, Request};

/// The table a database holds: keys and values are bytes (BLOB); a value
/// is never empty, so that an empty reply can only mean "not found".
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY NOT NULL,
    value BLOB NOT NULL CHECK (length(value) > 0)
) WITHOUT ROWID";

/// The one query, prepared once per connection and kept in its cache.
const SELECT: &str = "SELECT value FROM kv WHERE key = ?1";

/// The reply to a key that is not in the table.
pub const NOT_FOUND: &[u8] = b"";

/// One worker's handler: its own read-only connection, and the time each
/// lookup waits on top of the query, to stand for a database further away.
#[derive(Debug)]
pub struct Lookup {
    connection: Connection,
    delay: Duration,
    /// Whether the last lookup failed: only the first failure of a run is
    /// logged, the rest are counted as `handler_failed`.
    failing: bool,
}

impl Lookup {
    /// Opens the database at `path`, read-only, and prepares the query:
    /// a file that is missing, or that has no `kv` table, fails here, at
    /// start, not at the first request.
    pub fn open(path: impl AsRef<Path>) -> Result<Lookup, OpenError> {
        let path = path.as_ref();
        let failed = |source| OpenError {
            path: path.to_path_buf(),
            source,
        };
        // NO_MUTEX: the connection is used by one thread at a time (its
        // worker's), so SQLite need not lock it.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|e| failed(without_message(e)))?;
        connection.prepare_cached(SELECT).map_err(failed)?;
        Ok(Lookup {
            connection,
            delay: Duration::ZERO,
            failing: false,
        })
    }

    /// Waits `delay` before each query (none by default).
    pub fn delay(mut self, delay: Duration) -> Lookup {
        self.delay = delay;
        self
    }

    /// Writes the value of `key` into `reply`; `false` if there is none.
    fn find(&mut self, key: &[u8], reply: &mut Vec<u8>) -> rusqlite::Result<bool> {
        let mut statement = self.connection.prepare_cached(SELECT)?;
        let mut rows = statement.query([key])?;
        let Some(row) = rows.next()? else {
            return Ok(false);
        };
        match row.get_ref(0)? {
            // Text too: a row written by hand with the sqlite3 shell.
            ValueRef::Blob(value) | ValueRef::Text(value) => {
                reply.extend_from_slice(value);
                Ok(true)
            }
            other => Err(rusqlite::Error::InvalidColumnType(
                0,
                "value".into(),
                other.data_type(),
            )),
        }
    }
}

impl Handler for Lookup {
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        if !self.delay.is_zero() {
            thread::sleep(self.delay);
        }
        match self.find(request.payload, reply) {
            Ok(found) => {
                self.failing = false;
                if !found {
                    reply.extend_from_slice(NOT_FOUND);
                }
                Answer::Reply
            }
            Err(e) => {
                if !self.failing {
                    log::warn!("lookup failed: {e}; until one succeeds, failures are only counted");
                }
                self.failing = true;
                Answer::Fail
            }
        }
    }

    /// An empty datagram is this service's "not found": answering one
    /// would let two servers, one forged datagram between them, answer
    /// each other for ever. Being no key, it loses nothing.
    fn is_reply(&self, payload: &[u8]) -> bool {
        payload == NOT_FOUND
    }
}

/// SQLite's own description of an error's code, without the message
/// `open` adds, which repeats the path.
fn without_message(e: rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, _) => {
            let description = rusqlite::ffi::code_to_str(code.extended_code);
            rusqlite::Error::SqliteFailure(code, Some(description.to_owned()))
        }
        other => other,
    }
}

/// Creates the table at `path` if need be (and the file), and writes the
/// demo rows `key-0` = `value-0` ... `key-{rows - 1}`, replacing those there.
pub fn create(path: impl AsRef<Path>, rows: u64) -> rusqlite::Result<()> {
    let mut connection = Connection::open(path)?;
    connection.execute(SCHEMA, [])?;
    // One transaction: one write to disk, not one per row.
    let transaction = connection.transaction()?;
    {
        let mut insert = transaction.prepare("INSERT OR REPLACE INTO kv VALUES (?1, ?2)")?;
        for i in 0..rows {
            let (key, value) = (format!("key-{i}"), format!("value-{i}"));
            insert.execute([key.as_bytes(), value.as_bytes()])?;
        }
    }
    transaction.commit()
}

/// A database [`Lookup::open`] could not open or use.
#[derive(Debug)]
pub struct OpenError {
    path: PathBuf,
    source: rusqlite::Error,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot open {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
