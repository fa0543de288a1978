//! A real `redis-server` for the tests of the Redis location store: started on a free
//! loopback port with its own temporary directory, its append-only file on and fsynced at
//! every write (`--appendonly yes --appendfsync always`, so that what Redis acknowledged
//! survives a SIGKILL), no RDB snapshots; stopped by its PID. [`RedisServer::start`] is `None`
//! (after printing `skipped: redis-server not installed`) when the program is missing
//! locally, and fails in CI, as [`crate::tool_available`] does for every tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, wait_until, Process};

/// A running redis-server (see the module documentation).
pub struct RedisServer {
    pub process: Process,
    pub port: u16,
    dir: PathBuf,
    /// Removed with the server when the test is done (unless restarted elsewhere).
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A new server on a free port and a new directory; `None` when redis-server is missing.
    pub fn start() -> Option<RedisServer> {
        if !crate::tool_available("redis-server") {
            return None;
        }
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_owned();
        let mut server = RedisServer::start_in(&dir, free_port());
        server._temp = Some(temp);
        Some(server)
    }

    /// A server on `port` over the data in `dir` (a restart after [`RedisServer::kill`]).
    pub fn start_in(dir: &Path, port: u16) -> RedisServer {
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().expect("utf8 dir"),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let process = Process::start("redis-server", &args, "redis");
        let server = RedisServer {
            process,
            port,
            dir: dir.to_owned(),
            _temp: None,
        };
        assert!(
            wait_until(Duration::from_secs(10), || server.cli(&["PING"]) == "PONG"),
            "redis-server did not answer on port {port}"
        );
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `redis-cli -p PORT ARGS...` and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// SIGKILL, as a crash would; the directory stays for [`RedisServer::restart`].
    pub fn kill(&mut self) {
        self.process.kill_hard();
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        let temp = self._temp.take();
        let mut again = RedisServer::start_in(&self.dir, self.port);
        again._temp = temp;
        *self = again;
    }
}
