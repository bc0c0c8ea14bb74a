//! What in-process servers log: a logger installed once for the whole
//! test binary, which keeps only the lines a test is watching for.
//!
//! Tests run side by side in one process and share its one logger, so a
//! test watches for a marker of its own (its client's address, say) and
//! sees only the lines that contain it.

use std::sync::{Arc, Mutex, Once, PoisonError};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// One line logged: its level and its message.
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: Level,
    pub target: String,
    pub message: String,
}

type Lines = Arc<Mutex<Vec<Logged>>>;

/// The markers watched for, each with the lines that held it.
static WATCHED: Mutex<Vec<(String, Lines)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
        if watched.is_empty() {
            return;
        }
        let message = record.args().to_string();
        for (marker, lines) in watched.iter() {
            if message.contains(marker.as_str()) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Logged {
                        level: record.level(),
                        target: record.target().to_string(),
                        message: message.clone(),
                    });
            }
        }
    }

    fn flush(&self) {}
}

/// The lines logged at `info` or above that contain `marker`, from now
/// until it is dropped.
pub struct LogWatch {
    marker: String,
    lines: Lines,
}

impl LogWatch {
    /// Installs the logger if no test has yet, and watches for `marker`.
    pub fn new(marker: impl Into<String>) -> LogWatch {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            log::set_logger(&Capture).expect("no other logger in the tests");
            log::set_max_level(LevelFilter::Info);
        });
        let watch = LogWatch {
            marker: marker.into(),
            lines: Lines::default(),
        };
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((watch.marker.clone(), watch.lines.clone()));
        watch
    }

    /// Every line seen so far.
    pub fn lines(&self) -> Vec<Logged> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, lines)| !Arc::ptr_eq(lines, &self.lines));
    }
}
