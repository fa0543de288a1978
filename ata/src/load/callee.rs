//! The callee side of a load run, in a process of its own: the same program started as
//! `dialtone-ata load-answer` with the callee [`Side`] as flags. It registers its bank of
//! auto-answering lines, says so on stdout, then writes one JSON line per ended call with what
//! that call's media received ([`CalleeLine`]), and stops (unregistering) when its stdin
//! closes, which is how the load generator stops it, and how it stops when the generator dies.
//!
//! The load generator's half ([`CalleeProcess`]) starts it, reads its lines on a thread of its
//! own and hands them over on a channel.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::options::Side;
use super::report::Received;
use crate::app;
use crate::call::observer::{CallObserved, Observed};
use crate::error::AtaError;
use crate::line::{GetStatus, LineActor};
use crate::resync::ConfigSource;

/// How long a side waits for every line to register.
pub const REGISTER_WITHIN: Duration = Duration::from_secs(30);

/// One line of the callee process's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalleeLine {
    /// The lines are up: this many registered of that many.
    Ready {
        /// Lines registered.
        registered: usize,
        /// Lines.
        lines: usize,
    },
    /// A call's media stopped; what it received.
    Leg {
        /// The SIP Call-ID.
        call_id: String,
        /// What the callee received.
        received: Received,
    },
}

/// `dialtone-ata load-answer` (started by `load`, not by hand): the callee side's flags.
#[derive(Args, Debug, Clone)]
pub struct CalleeOptions {
    /// HOST[:PORT].
    #[arg(long)]
    proxy: String,
    /// The first line's user.
    #[arg(long)]
    first_user: String,
    /// How many lines.
    #[arg(long)]
    lines: usize,
    /// Their password.
    #[arg(long, default_value = "")]
    password: String,
    /// Where to bind.
    #[arg(long)]
    bind: std::net::IpAddr,
    /// FROM-TO.
    #[arg(long)]
    rtp_ports: String,
    /// The codec.
    #[arg(long)]
    codec: String,
}

impl CalleeOptions {
    fn side(&self) -> Side {
        Side {
            proxy: self.proxy.clone(),
            first_user: self.first_user.clone(),
            lines: self.lines,
            password: self.password.clone(),
            bind: self.bind,
            rtp_ports: self.rtp_ports.clone(),
            codec: self.codec.clone(),
            tone_hz: 1500,
            answers: true,
        }
    }
}

/// Waits until every line of `lines` is registered, or `within` passes; how many are.
pub async fn wait_registered(lines: &[Addr<LineActor>], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut registered = 0;
        for line in lines {
            if let Ok(status) = line.send(GetStatus).await {
                registered += usize::from(status.registration == "registered");
            }
        }
        if registered == lines.len() || Instant::now() >= deadline {
            return registered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints what each incoming call's media received, one JSON line each.
struct LegPrinter;

impl Actor for LegPrinter {
    type Context = Context<Self>;
}

impl Handler<CallObserved> for LegPrinter {
    type Result = ();

    fn handle(&mut self, msg: CallObserved, _ctx: &mut Context<Self>) {
        if let Observed::Media(counters) = msg.event {
            print_line(&CalleeLine::Leg {
                call_id: msg.call_id,
                received: Received::from_counters(&counters),
            });
        }
    }
}

fn print_line(line: &CalleeLine) {
    if let Ok(text) = serde_json::to_string(line) {
        println!("{text}");
    }
}

/// The callee process: runs until stdin closes.
pub fn serve(options: CalleeOptions) -> Result<(), AtaError> {
    let config = options.side().config()?;
    actix_rt::System::new().block_on(async move {
        let printer = LegPrinter.start();
        let source = ConfigSource {
            path: None,
            flags: Default::default(),
        };
        let device = app::start_observed(config, source, Some(printer.recipient())).await?;
        let registered = wait_registered(&device.lines, REGISTER_WITHIN).await;
        print_line(&CalleeLine::Ready {
            registered,
            lines: device.lines.len(),
        });
        let (closed, wait) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
            let _ = closed.send(());
        });
        let _ = wait.await;
        device.stop().await;
        System::current().stop();
        Ok(())
    })
}

/// The running callee process, seen from the load generator.
pub struct CalleeProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl CalleeProcess {
    /// Starts this program as the callee side; its lines, parsed, come on the channel.
    pub fn spawn(
        side: &Side,
    ) -> Result<(CalleeProcess, mpsc::UnboundedReceiver<CalleeLine>), AtaError> {
        let program = std::env::current_exe()?;
        let mut child = Command::new(program)
            .arg("load-answer")
            .args(["--proxy", &side.proxy])
            .args(["--first-user", &side.first_user])
            .args(["--lines", &side.lines.to_string()])
            .args(["--password", &side.password])
            .args(["--bind", &side.bind.to_string()])
            .args(["--rtp-ports", &side.rtp_ports])
            .args(["--codec", &side.codec])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| {
            AtaError::Io(std::io::Error::other("the callee process has no stdout"))
        })?;
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<CalleeLine>(&text) {
                    Ok(line) => {
                        if sender.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("callee: {text}"),
                }
            }
        });
        Ok((CalleeProcess { child, stdin }, lines))
    }

    /// The process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its stdin, so it unregisters and exits; waits for that (5 s at most, then kills
    /// it) and returns every line it wrote meanwhile.
    pub async fn stop(
        mut self,
        lines: &mut mpsc::UnboundedReceiver<CalleeLine>,
    ) -> Vec<CalleeLine> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => rest.push(line),
                Ok(None) => break,
                Err(_) => {
                    let _ = self.child.kill();
                    break;
                }
            }
        }
        let _ = self.child.wait();
        rest
    }
}
