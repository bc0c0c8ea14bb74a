// Temporary databases, a client socket, and waits that are always bounded.
mod support;

// The binary: a round trip, a clean exit on SIGTERM, a database it cannot open.
mod binary;
// The service in-process: values, missing keys, a broken database, factories.
mod service;
