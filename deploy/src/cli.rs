//! The `dialtone-lab` program: the whole lab in one command. It builds (when run from the source tree) and
//! starts the lab's Redis server (a cluster lab, `deploy/lab-cluster.toml`), its
//! `dialtone-proxy` nodes and the ATAs of `deploy/lab.toml` as separate processes, waits until
//! every line is registered, prints the addresses and the command that places a call, and on
//! Ctrl-C or SIGTERM stops the ATAs first (so they unregister), then the proxies, then Redis.
//!
//! Running the pieces as separate processes on separate PCs stays the normal deployment; this
//! is the convenience for one machine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;

use crate::lab::{Lab, DEFAULT_LAB};

/// Runs a Dialtone lab on this machine.
#[derive(Debug, Parser)]
#[command(name = "dialtone-lab", version, about)]
struct Cli {
    /// A lab file (default: the embedded deploy/lab.toml).
    #[arg(long, value_name = "FILE")]
    lab: Option<PathBuf>,
    /// Do not run `cargo build` for the proxy and ATA binaries.
    #[arg(long)]
    no_build: bool,
    /// The dialtone-proxy program (default: beside this one).
    #[arg(long, value_name = "PATH")]
    proxy_bin: Option<PathBuf>,
    /// The dialtone-ata program (default: beside this one).
    #[arg(long, value_name = "PATH")]
    ata_bin: Option<PathBuf>,
}

/// Runs the program with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialtone-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A child process of the lab, stopped by PID.
struct Piece {
    name: String,
    child: Child,
}

impl Piece {
    fn terminate(&mut self, grace: Duration) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM lets the ATA unregister and the proxy flush its store.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let text = match &cli.lab {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => DEFAULT_LAB.to_string(),
    };
    let lab = Lab::parse(&text).map_err(|e| anyhow::anyhow!("lab file: {e}"))?;
    let explicit = cli.proxy_bin.is_some() && cli.ata_bin.is_some();
    let bin_dir = binaries_dir(cli.no_build || explicit)?;
    let proxy_bin = cli
        .proxy_bin
        .clone()
        .unwrap_or_else(|| bin_dir.join("dialtone-proxy"));
    let ata_bin = cli
        .ata_bin
        .clone()
        .unwrap_or_else(|| bin_dir.join("dialtone-ata"));

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;

    let mut redis = match &lab.redis {
        Some(spec) => Some(start_redis(spec)?),
        None => None,
    };
    let mut proxies: Vec<Piece> = Vec::new();
    for spec in &lab.proxies {
        let name = spec.name.clone().unwrap_or_else(|| "proxy".into());
        let started = start_proxy(&lab, spec, &proxy_bin, &name);
        match started {
            Ok(piece) => proxies.push(piece),
            Err(e) => {
                stop_all(&mut [], &mut proxies, redis.as_mut());
                return Err(e);
            }
        }
    }
    let proxy_http: SocketAddr = lab
        .proxy()
        .http
        .parse()
        .with_context(|| format!("proxy.http `{}`", lab.proxy().http))?;

    let mut atas: Vec<Piece> = Vec::new();
    for spec in &lab.ata {
        let control: SocketAddr = spec
            .control
            .parse()
            .with_context(|| format!("ata `{}`.control `{}`", spec.name, spec.control))?;
        let mut piece = spawn(&ata_bin, &lab.ata_args(spec), &spec.name)?;
        if let Err(e) = wait_ready(control, "/livez", &mut piece, Duration::from_secs(20)) {
            piece.terminate(Duration::from_secs(2));
            stop_all(&mut atas, &mut proxies, redis.as_mut());
            return Err(e);
        }
        atas.push(piece);
    }

    let users: Vec<String> = lab
        .ata
        .iter()
        .flat_map(|a| {
            a.lines
                .iter()
                .map(|l| l.split(':').next().unwrap_or("").to_string())
        })
        .collect();
    let registered = wait_registered(proxy_http, &users, Duration::from_secs(20));
    print_summary(&lab, &proxy_bin, &ata_bin, &users, registered);

    let mut failure = None;
    while !stop.load(Ordering::Relaxed) {
        let exited =
            proxies
                .iter_mut()
                .chain(redis.as_mut())
                .find_map(|p| match p.child.try_wait() {
                    Ok(Some(status)) => Some(format!("{} exited ({status})", p.name)),
                    _ => None,
                });
        if let Some(exited) = exited {
            failure = Some(exited);
            break;
        }
        if let Some(a) = atas
            .iter_mut()
            .find_map(|a| matches!(a.child.try_wait(), Ok(Some(_))).then(|| a.name.clone()))
        {
            failure = Some(format!("{a} exited"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("stopping the lab");
    for a in &mut atas {
        a.terminate(Duration::from_secs(5));
    }
    // The ATAs unregistered as they stopped; say what the proxy has left.
    if let Some(body) = http_get(proxy_http, "/api/registrations") {
        if let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&body) {
            println!("registrations left after the ATAs stopped: {}", list.len());
        }
    }
    stop_all(&mut [], &mut proxies, redis.as_mut());
    println!("lab stopped");
    match failure {
        Some(f) => bail!("{f}; see its output above"),
        None => Ok(()),
    }
}

/// Stops the ATAs (they unregister), then the proxies, then Redis.
fn stop_all(atas: &mut [Piece], proxies: &mut [Piece], redis: Option<&mut Piece>) {
    for a in atas {
        a.terminate(Duration::from_secs(5));
    }
    for p in proxies {
        p.terminate(Duration::from_secs(5));
    }
    if let Some(r) = redis {
        r.terminate(Duration::from_secs(5));
    }
}

fn start_proxy(
    lab: &Lab,
    spec: &crate::lab::ProxySpec,
    program: &Path,
    name: &str,
) -> anyhow::Result<Piece> {
    let http: SocketAddr = spec
        .http
        .parse()
        .with_context(|| format!("proxy `{name}`.http `{}`", spec.http))?;
    let mut piece = spawn(program, &lab.proxy_args_of(spec), name)?;
    if let Err(e) = wait_ready(http, "/readyz", &mut piece, Duration::from_secs(20)) {
        piece.terminate(Duration::from_secs(2));
        return Err(e);
    }
    Ok(piece)
}

/// Starts Debian's `redis-server` for the lab and waits until it answers PING.
fn start_redis(spec: &crate::lab::RedisSpec) -> anyhow::Result<Piece> {
    let dir = match &spec.dir {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("dialtone-lab-redis-{}", spec.port)),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("redis.dir {}", dir.display()))?;
    let args = Lab::redis_args(spec, &dir.display().to_string());
    let mut piece = match spawn(Path::new("redis-server"), &args, "redis") {
        Ok(piece) => piece,
        Err(e) if e.root_cause().to_string().contains("No such file") => bail!(
            "the lab's [redis] needs Debian's redis-server, which is not installed \
             (apt-get install redis-server)"
        ),
        Err(e) => return Err(e),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], spec.port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis_answers(addr) {
            return Ok(piece);
        }
        if let Ok(Some(status)) = piece.child.try_wait() {
            bail!(
                "redis-server exited during start-up ({status}); is port {} free?",
                spec.port
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    piece.terminate(Duration::from_secs(2));
    bail!("redis-server did not answer PING on {addr} within 10 s")
}

/// True when a Redis server on `addr` answers PING (RESP inline command).
fn redis_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Where `dialtone-proxy` and `dialtone-ata` are: beside this program. From a source tree they
/// are built first (a no-op when up to date), in the same profile as this program.
fn binaries_dir(no_build: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating dialtone-lab")?;
    let dir = exe
        .parent()
        .map(Path::to_path_buf)
        .context("dialtone-lab has no directory")?;
    if no_build {
        return Ok(dir);
    }
    build_binaries(&dir)?;
    Ok(dir)
}

fn build_binaries(dir: &Path) -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if workspace.join("Cargo.toml").exists() {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&workspace).args([
            "build",
            "-p",
            "dialtone-proxy",
            "-p",
            "dialtone-ata",
            "--bins",
        ]);
        if release {
            cmd.arg("--release");
        }
        println!("building dialtone-proxy and dialtone-ata ...");
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build failed");
        }
    }
    for name in ["dialtone-proxy", "dialtone-ata"] {
        if !dir.join(name).exists() {
            bail!("{name} not found in {}", dir.display());
        }
    }
    Ok(())
}

fn spawn(program: &Path, args: &[String], name: &str) -> anyhow::Result<Piece> {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(program);
    // If the lab itself dies without stopping them (killed, or a panic on a closed terminal),
    // its children get SIGTERM rather than run on as orphans.
    // SAFETY: the closure runs in the child between fork and exec and only makes one
    // async-signal-safe system call (prctl), touching no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = command
        .args(args)
        .stdin(Stdio::null())
        // Quiet by default: warnings and errors only (RUST_LOG overrides for the ATAs).
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // A process group of its own, so that Ctrl-C in the terminal reaches only the lab,
        // which then stops the ATAs first (they unregister) and the proxy last.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(Piece {
        name: name.to_string(),
        child,
    })
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

fn wait_ready(
    addr: SocketAddr,
    path: &str,
    piece: &mut Piece,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_get(addr, path).is_some() {
            return Ok(());
        }
        if let Ok(Some(status)) = piece.child.try_wait() {
            bail!("{} exited during start-up ({status})", piece.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{} did not answer http://{addr}{path} within {timeout:?}",
        piece.name
    )
}

fn wait_registered(proxy_http: SocketAddr, users: &[String], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(body) = http_get(proxy_http, "/api/registrations") {
            if let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&body) {
                let registered: Vec<&str> = list.iter().filter_map(|r| r["aor"].as_str()).collect();
                if users.iter().all(|u| registered.contains(&u.as_str())) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn print_summary(lab: &Lab, proxy_bin: &Path, ata_bin: &Path, users: &[String], registered: bool) {
    println!();
    println!("Dialtone lab running");
    if let Some(redis) = &lab.redis {
        println!(
            "  redis      127.0.0.1:{}   (registrations of every proxy)",
            redis.port
        );
    }
    for proxy in &lab.proxies {
        println!(
            "  {:<10} SIP {}   metrics http://{}/metrics   auth {}",
            proxy.name.as_deref().unwrap_or("proxy"),
            proxy.listen.join(" "),
            proxy.http,
            proxy.auth
        );
    }
    for a in &lab.ata {
        println!(
            "  {:<10} lines {}   SIP {}   control http://{}   metrics http://{}/metrics",
            a.name,
            a.lines
                .iter()
                .map(|l| l.split(':').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(","),
            a.bind,
            a.control,
            a.control
        );
    }
    if registered {
        println!("  registered: {}", users.join(", "));
    } else {
        println!(
            "  WARNING: not every line registered yet ({}); see the output above",
            users.join(", ")
        );
    }
    if let (Some(first), Some(second)) = (lab.ata.first(), lab.ata.get(1)) {
        let callee = second.lines[0].split(':').next().unwrap_or("");
        let ata = ata_bin;
        println!();
        println!(
            "Place a call from {} to {callee}:",
            first.lines[0].split(':').next().unwrap_or("")
        );
        println!(
            "  {} ctl --control {} dial {callee}",
            ata.display(),
            first.control
        );
        println!("Hang up:");
        println!("  {} ctl --control {} onhook", ata.display(), first.control);
        println!(
            "Telephony features (call waiting, 3-way calling, transfer, forward, *69...): \
             ctl flash, ctl dial '#72NUMBER#', and the README's table"
        );
        println!("Registrations and calls:");
        println!(
            "  {} ctl --http {} registrations",
            proxy_bin.display(),
            lab.proxy().http
        );
        println!(
            "  admin page with live call ladders: http://{}/",
            lab.proxy().http
        );
        println!("  Prometheus: prometheus --config.file deploy/prometheus/prometheus.yml");
    }
    println!();
    println!("Ctrl-C stops the lab.");
}
