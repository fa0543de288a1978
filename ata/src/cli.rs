//! The command line of `dialtone-ata`: flags only. Parses them, loads the config file, hands
//! the merged [`Config`] to `app::run`, or runs the `ctl` client. In the library (not in
//! `main.rs`) so that the end-to-end test package can build the same program under its own
//! name (`tests/src/bin/e2e-dialtone-ata.rs`), as cargo only tells tests where the binaries
//! of their own package are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, FileConfig, Overrides};
use crate::ctl::{self, CtlCommand};
use crate::error::AtaError;
use crate::resync::ConfigSource;

/// A software Cisco ATA 186: SIP lines with virtual or USB handsets.
#[derive(Parser)]
#[command(name = "dialtone-ata", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Default)]
struct RunArgs {
    /// TOML config file; flags override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Outbound proxy and registrar, HOST[:PORT] (a domain is resolved with SRV _sip._udp, then A/AAAA); repeat for backups, the primary first.
    #[arg(long, value_name = "HOST[:PORT]")]
    proxy: Vec<String>,
    /// While on a backup proxy, seconds between OPTIONS to the primary; it is used again once it answers [default: 30].
    #[arg(long, value_name = "SECONDS")]
    proxy_fallback_interval: Option<f64>,
    /// DNS server for the proxy's and dialogs' host names, IP[:PORT]; repeatable [default: /etc/resolv.conf].
    #[arg(long, value_name = "IP[:PORT]")]
    dns: Vec<String>,
    /// RFC 3261 T1 in milliseconds: a request unanswered for 64 T1 times out [default: 500].
    #[arg(long, value_name = "MS")]
    t1_ms: Option<u64>,
    /// A line, USER:PASSWORD; repeat for more lines.
    #[arg(long = "line", value_name = "USER:PASSWORD")]
    lines: Vec<String>,
    /// SIP UDP socket [default: 127.0.0.1:0, a free port, printed at start].
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<String>,
    /// SIP transport for requests: udp or tcp (TCP also listens on the bind port) [default: udp].
    #[arg(long, value_name = "udp|tcp")]
    transport: Option<String>,
    /// RTP port range [default: 16384-16482].
    #[arg(long, value_name = "FROM-TO")]
    rtp_ports: Option<String>,
    /// Registration Expires in seconds; 0 disables registration [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    register_interval: Option<u32>,
    /// Codecs to offer, in order: pcmu,pcma[,opus][,g729] [default: pcmu,pcma].
    #[arg(long, value_name = "LIST")]
    codecs: Option<String>,
    /// Dial plan, e.g. "(xxxx|9xxxxxxx.)": x any digit, [1-5] a set, "." repeats; empty = digits then # or timeout.
    #[arg(long, value_name = "PATTERNS")]
    dial_plan: Option<String>,
    /// Seconds after the last digit before the number is complete [default: 5].
    #[arg(long, value_name = "SECONDS")]
    interdigit_timeout: Option<f64>,
    /// HTTP control API, /metrics, /livez, /readyz [default: 127.0.0.1:8070; port 0 = free, printed].
    #[arg(long, value_name = "IP:PORT")]
    control: Option<String>,
    /// Line hardware: virtual or usb [default: virtual].
    #[arg(long, value_name = "BACKEND")]
    line_backend: Option<String>,
    /// Virtual handset microphone for every line: FILE.wav, tone:HZ or silence.
    #[arg(long, value_name = "SOURCE")]
    audio_in: Option<String>,
    /// Virtual handset earpiece recording for every line (WAV, 8 kHz mono 16-bit); {user} is replaced.
    #[arg(long, value_name = "FILE.wav")]
    audio_out: Option<String>,
    /// Answer incoming calls after ringing this many seconds [default: never].
    #[arg(long, value_name = "SECONDS")]
    auto_answer: Option<f64>,
    /// USB backend, every line: the sound card whose name contains NAME (any case) [default: the default card].
    #[arg(long, value_name = "NAME")]
    usb_audio_device: Option<String>,
    /// USB backend, every line: hook and keypad device, /dev/hidrawN or /dev/input/eventN [default: the hidraw device with a Hook Switch].
    #[arg(long, value_name = "PATH")]
    usb_hid_device: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to a running device's control API.
    Ctl(CtlArgs),
    /// Load generator: calls with tones both ways through a proxy, from one bank of lines to
    /// another (in a second process); reports setup time, loss, jitter and MOS per call.
    /// Exit status 2 when a call failed.
    Load(crate::load::LoadOptions),
    /// The callee side of `load`, started by it.
    #[command(hide = true)]
    LoadAnswer(crate::load::CalleeOptions),
}

#[derive(Args)]
struct CtlArgs {
    /// The device's control address.
    #[arg(long, default_value = "127.0.0.1:8070", value_name = "IP:PORT")]
    control: SocketAddr,
    /// The line, from 1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    line: usize,
    /// Print the API's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: CtlAction,
}

#[derive(Subcommand)]
enum CtlAction {
    /// Lift the handset.
    Offhook,
    /// Put the handset down.
    Onhook,
    /// Press keys (0-9 * # A-D), lifting the handset first if needed.
    Dial {
        /// The keys; end with # to send at once.
        digits: String,
    },
    /// Hook flash: hold and dial tone, answer a waiting call, swap, conference (see README).
    Flash,
    /// Answer a ringing call.
    Answer,
    /// Transfer the connected call: blind (REFER) to a number or SIP URI, or `--attended`:
    /// join the held call and the consultation call (REFER with Replaces).
    Transfer {
        /// The number (or sip: URI) the far end should call.
        #[arg(required_unless_present = "attended", conflicts_with = "attended")]
        target: Option<String>,
        /// Attended transfer of the held call to the consultation call.
        #[arg(long)]
        attended: bool,
    },
    /// Show the line.
    Status,
    /// Show every line's call.
    Calls,
}

/// `dialtone-ata ctl ...`.
fn ctl_command(args: CtlArgs) -> Result<ExitCode, AtaError> {
    let command = match args.action {
        CtlAction::Offhook => CtlCommand::OffHook,
        CtlAction::Onhook => CtlCommand::OnHook,
        CtlAction::Dial { digits } => CtlCommand::Dial(digits),
        CtlAction::Flash => CtlCommand::Flash,
        CtlAction::Answer => CtlCommand::Answer,
        CtlAction::Transfer {
            target: Some(target),
            ..
        } => CtlCommand::Transfer(target),
        CtlAction::Transfer { .. } => CtlCommand::TransferAttended,
        CtlAction::Status => CtlCommand::Status,
        CtlAction::Calls => CtlCommand::Calls,
    };
    let output =
        ctl::run(args.control, args.line, &command, args.json).map_err(AtaError::Control)?;
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

/// Runs the program; errors are printed on stderr and give exit status 1.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dialtone-ata: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs on stderr, at `default` unless RUST_LOG says otherwise.
fn init_logs(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> Result<ExitCode, AtaError> {
    match cli.command {
        Some(Command::Load(options)) => {
            // A line's every call logs at info; a thousand of them would drown the progress.
            init_logs("warn");
            let report = crate::load::run(options)?;
            let code = if report.summary.failed > 0 { 2 } else { 0 };
            return Ok(ExitCode::from(code));
        }
        Some(Command::LoadAnswer(options)) => {
            init_logs("warn");
            crate::load::callee::serve(options)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Ctl(args)) => return ctl_command(args),
        None => {}
    }
    init_logs("info");
    let run = cli.run;
    let file = match &run.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        proxy: run.proxy,
        dns: run.dns,
        t1_ms: run.t1_ms,
        proxy_fallback_interval: run.proxy_fallback_interval,
        lines: run.lines,
        bind: run.bind,
        transport: run.transport,
        rtp_ports: run.rtp_ports,
        register_interval: run.register_interval,
        codecs: run.codecs,
        dial_plan: run.dial_plan,
        interdigit_timeout: run.interdigit_timeout,
        control: run.control,
        line_backend: run.line_backend,
        audio_in: run.audio_in,
        audio_out: run.audio_out,
        auto_answer: run.auto_answer,
        usb_audio_device: run.usb_audio_device,
        usb_hid_device: run.usb_hid_device,
    };
    let config = Config::build(file, overrides.clone())?;
    let source = ConfigSource {
        path: run.config,
        flags: overrides,
    };
    actix_rt::System::new().block_on(crate::app::run(config, source))?;
    Ok(ExitCode::SUCCESS)
}
