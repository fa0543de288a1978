//! Starting and stopping one device: resolve the proxy (and the message-waiting server),
//! bind the SIP socket, start the endpoint, per line a line actor, a message-waiting actor
//! (subscribing when the line registers and `mwi_server` names a server) and a registration
//! actor, and the control API; then wait for SIGINT/SIGTERM, unsubscribe and unregister every
//! line (2 s at most) and stop.
//!
//! [`run`] prints `sip udp:IP:PORT` (and `sip tcp:IP:PORT` with TCP) and
//! `control http://IP:PORT` on stdout once both are bound, so a caller that asked for port 0
//! learns the ports; [`start`] returns them.

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use rand::Rng;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::auth::DigestUser;
use crate::call::actor::CallContext;
use crate::call::observer::CallObserved;
use crate::config::{Config, LineBackend, LineConfig};
use crate::control::{serve, ControlState};
use crate::endpoint::{AttachResync, Endpoint};
use crate::error::AtaError;
use crate::identity::LineIdentity;
use crate::line::phone::{LineState, Phone};
use crate::line::virtual_line::VirtualLine;
use crate::line::{AttachRegistration, Handset, LineActor, LineSetup};
use crate::metrics::{Metrics, StateNames};
use crate::mwi::actor::{MwiActor, Unsubscribe};
use crate::mwi::subscription::{Subscription, SubscriptionParams, DEFAULT_EXPIRES};
use crate::registration::actor::{RegistrationActor, Unregister};
use crate::registration::rules::{Registration, RegistrationParams, RegistrationState};
use crate::resolve::Locator;
use crate::resync::{ConfigSource, Resync};
use dialtone_transaction::Transport;

/// How long shutdown waits for the unsubscriptions and unregistrations of a few lines.
const UNREGISTER_GRACE: Duration = Duration::from_secs(2);

/// And how much longer per line: a load generator's thousand lines unregister at once, and
/// their REGISTERs take a while through one proxy (the limit of 2 s was too short for them).
const UNREGISTER_GRACE_PER_LINE: Duration = Duration::from_millis(2);

/// Line n sends its first REGISTER n times this after start: a bank of 1000 lines registers
/// over 2 s instead of at once (see `RegistrationActor::starting_after`); one line at once.
const REGISTER_SPACING: Duration = Duration::from_millis(2);

/// A running device, as [`start`] leaves it.
pub struct Device {
    /// The SIP socket's address.
    pub sip: SocketAddr,
    /// The control API's address.
    pub control: SocketAddr,
    /// Whether SIP also listens on TCP (at `sip`).
    pub transport: Transport,
    /// The lines, in order (the load generator drives them as the control API does).
    pub lines: Vec<Addr<LineActor>>,
    registrations: Vec<Addr<RegistrationActor>>,
    subscriptions: Vec<Addr<MwiActor>>,
    server: actix_web::dev::ServerHandle,
}

impl Device {
    /// Unsubscribes and unregisters every line (2 s at most) and stops the control API. The
    /// caller stops its actix `System` afterwards.
    pub async fn stop(self) {
        info!("stopping: unsubscribing and unregistering");
        unregister_all(&self.registrations, &self.subscriptions).await;
        self.server.stop(true).await;
    }
}

/// Runs the device until SIGINT or SIGTERM, then stops the actix system. `source` is where
/// `config` came from, read again on `check-sync`.
pub async fn run(config: Config, source: ConfigSource) -> Result<(), AtaError> {
    let device = start(config, source).await?;
    println!("sip udp:{}", device.sip);
    if device.transport == Transport::Tcp {
        println!("sip tcp:{}", device.sip);
    }
    println!("control http://{}", device.control);
    wait_for_stop().await;
    device.stop().await;
    System::current().stop();
    Ok(())
}

/// How many port numbers an ATA with `bind` port 0 tries before giving up on a TCP listener.
const TCP_PORT_ATTEMPTS: usize = 16;

/// Binds the SIP UDP socket and, for TCP, a listener on the same port, so that Via and
/// Contact name one address (RFC 3261 18.1.1). With port 0 the kernel picks the UDP port, and
/// that number may be taken for TCP by another program (seen when tests ran in parallel):
/// then another port is tried.
fn bind_sip(
    bind: std::net::SocketAddr,
    transport: Transport,
) -> Result<(std::net::UdpSocket, Option<std::net::TcpListener>), AtaError> {
    let attempts = if bind.port() == 0 {
        TCP_PORT_ATTEMPTS
    } else {
        1
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = std::net::UdpSocket::bind(bind)
            .map_err(|e| AtaError::config("bind", format!("{bind}: {e}")))?;
        if transport == Transport::Udp {
            return Ok((udp, None));
        }
        let local = udp.local_addr()?;
        match std::net::TcpListener::bind(local) {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < attempts => {
                tracing::debug!(%local, "TCP port taken; trying another");
            }
            Err(e) => {
                return Err(AtaError::config("bind", format!("TCP on {local}: {e}")));
            }
        }
    }
}

/// Starts a device inside the current actix system (the end-to-end tests run several in one
/// process this way).
pub async fn start(config: Config, source: ConfigSource) -> Result<Device, AtaError> {
    start_observed(config, source, None).await
}

/// [`start`], with every call of every line reporting to `observer` (the load generator).
pub async fn start_observed(
    config: Config,
    source: ConfigSource,
    observer: Option<Recipient<CallObserved>>,
) -> Result<Device, AtaError> {
    let locator = Locator::new(&config.dns);
    let proxies = resolve_proxies(&config, &locator).await?;
    let proxy = proxies.first().copied();
    let mwi_server = resolve_mwi_server(&config, &locator, proxy).await;
    let (std_socket, tcp) = bind_sip(config.bind, config.transport)?;
    std_socket.set_nonblocking(true)?;
    let local = std_socket.local_addr()?;
    let listener = match tcp {
        Some(tcp) => {
            tcp.set_nonblocking(true)?;
            Some(tokio::net::TcpListener::from_std(tcp)?)
        }
        None => None,
    };
    let endpoint = Endpoint::new(
        tokio::net::UdpSocket::from_std(std_socket)?,
        config.transport,
        listener,
        config.t1,
    )
    .start();
    let names: Vec<String> = config.lines.iter().map(|l| l.user.clone()).collect();
    let metrics = Metrics::new(&names, state_names())
        .map_err(|e| AtaError::config("line", format!("metrics: {e}")))?;
    let domain = match config.proxies.first() {
        Some(p) => p.host.clone(),
        None => local.ip().to_string(),
    };
    let mut lines = Vec::new();
    let mut registrations = Vec::new();
    let mut subscriptions = Vec::new();
    let mut per_line = Vec::new();
    for (index, line) in config.lines.iter().enumerate() {
        let identity = LineIdentity {
            user: line.user.clone(),
            display_name: line.display_name.clone(),
            domain: domain.clone(),
            local,
            transport: config.transport,
        };
        let registers = proxy.is_some() && config.register_interval > 0;
        let addr = start_line(
            &config,
            index,
            line,
            &identity,
            (proxy, &locator),
            &endpoint,
            &metrics,
            registers,
            observer.clone(),
        )?;
        let subscription = mwi_server.filter(|_| registers).map(|server| {
            let params = SubscriptionParams {
                identity: identity.clone(),
                server,
                expires: DEFAULT_EXPIRES,
                user: digest_user(line),
            };
            Subscription::new(params, rand::thread_rng().gen())
        });
        let mwi = MwiActor::new(
            line.user.clone(),
            subscription,
            endpoint.clone(),
            addr.clone().recipient(),
            metrics.clone(),
        )
        .start();
        subscriptions.push(mwi);
        if registers {
            let rules = Registration::new(
                RegistrationParams {
                    identity: identity.clone(),
                    registrars: proxies.clone(),
                    fallback_interval: config.proxy_fallback_interval,
                    expires: config.register_interval,
                    user: digest_user(line),
                },
                rand::thread_rng().gen(),
            );
            let registration = RegistrationActor::new(
                line.user.clone(),
                rules,
                endpoint.clone(),
                addr.clone().recipient(),
                metrics.clone(),
            )
            .starting_after(REGISTER_SPACING * index as u32)
            .start();
            addr.do_send(AttachRegistration(registration.clone()));
            per_line.push(Some(registration.clone()));
            registrations.push(registration);
        } else {
            per_line.push(None);
        }
        lines.push(addr);
    }
    let resync = Resync::new(source, config.clone(), per_line).start();
    endpoint.do_send(AttachResync(resync.recipient()));
    let (server, control) = serve(
        config.control,
        ControlState {
            lines: lines.clone(),
            metrics,
        },
    )
    .map_err(|e| AtaError::config("control", format!("{}: {e}", config.control)))?;
    let handle = server.handle();
    actix_rt::spawn(server);
    info!(%local, %control, "ATA running");
    Ok(Device {
        sip: local,
        transport: config.transport,
        control,
        lines,
        registrations,
        subscriptions,
        server: handle,
    })
}

/// Every proxy's addresses, the primary's first, then each backup's (a domain's SRV targets
/// in RFC 2782 order), each once. A backup that does not resolve is left out with a warning;
/// the primary must resolve.
async fn resolve_proxies(config: &Config, locator: &Locator) -> Result<Vec<SocketAddr>, AtaError> {
    let mut all: Vec<SocketAddr> = Vec::new();
    for (index, proxy) in config.proxies.iter().enumerate() {
        match locator.resolve_proxy(proxy, config.transport).await {
            Ok(targets) => {
                for target in targets {
                    if !all.contains(&target) {
                        all.push(target);
                    }
                }
            }
            Err(e) if index == 0 => return Err(e),
            Err(e) => warn!(error = %e, "a backup proxy does not resolve; left out"),
        }
    }
    Ok(all)
}

/// Where lines subscribe to message waiting: `mwi_server` resolved as the proxy is (the
/// primary proxy's own address when they are the same). A name that does not resolve disables
/// the subscriptions with a warning rather than stopping the device: calls matter more.
async fn resolve_mwi_server(
    config: &Config,
    locator: &Locator,
    proxy: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let server = config.mwi_server.as_ref()?;
    if config.proxies.first() == Some(server) {
        return proxy;
    }
    match locator.resolve_proxy(server, config.transport).await {
        Ok(addrs) => addrs.first().copied(),
        Err(e) => {
            warn!(error = %e, "mwi_server does not resolve; not subscribing to message waiting");
            None
        }
    }
}

/// The state gauges' names, from the machines that own the states.
fn state_names() -> StateNames {
    StateNames {
        line: &LineState::NAMES,
        registration: &RegistrationState::NAMES,
    }
}

fn digest_user(line: &LineConfig) -> DigestUser {
    DigestUser {
        username: line.auth_user().to_owned(),
        password: line.password.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn start_line(
    config: &Config,
    index: usize,
    line: &LineConfig,
    identity: &LineIdentity,
    (proxy, locator): (Option<SocketAddr>, &Locator),
    endpoint: &Addr<Endpoint>,
    metrics: &Metrics,
    registers: bool,
    observer: Option<Recipient<CallObserved>>,
) -> Result<Addr<LineActor>, AtaError> {
    let handset = open_handset(config.line_backend, line)?;
    let (identity, endpoint, metrics_for_calls) =
        (identity.clone(), endpoint.clone(), metrics.clone());
    let (codecs, rtp_ports, user) = (config.codecs.clone(), config.rtp_ports, digest_user(line));
    let t1 = config.t1;
    let line_name = line.user.clone();
    let locator = locator.clone();
    let setup = LineSetup {
        index: index + 1,
        phone: Phone::with_features(
            config.dial_plan.clone(),
            config.interdigit_timeout,
            config.features.clone(),
        ),
        handset,
        auto_answer: config.auto_answer,
        metrics: metrics.clone(),
        call_context: Box::new(move |line| CallContext {
            identity: identity.clone(),
            user: user.clone(),
            endpoint: endpoint.clone(),
            proxy,
            locator: locator.clone(),
            codecs: codecs.clone(),
            rtp_ports,
            metrics: metrics_for_calls.clone(),
            line_name: line_name.clone(),
            line,
            observer: observer.clone(),
            t1,
        }),
        registers,
    };
    Ok(LineActor::new(line.user.clone(), setup).start())
}

fn open_handset(backend: LineBackend, line: &LineConfig) -> Result<Box<dyn Handset>, AtaError> {
    match backend {
        LineBackend::Virtual => Ok(Box::new(VirtualLine::open(
            &line.audio_in,
            line.audio_out.as_deref(),
        )?)),
        #[cfg(feature = "usb-handset")]
        LineBackend::Usb => Ok(Box::new(crate::line::usb::UsbLine::open(line)?)),
        #[cfg(not(feature = "usb-handset"))]
        LineBackend::Usb => Err(AtaError::config(
            "line_backend",
            "`usb` needs a build with --features usb-handset",
        )),
    }
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn unregister_all(
    registrations: &[Addr<RegistrationActor>],
    subscriptions: &[Addr<MwiActor>],
) {
    let mut waits = Vec::new();
    for subscription in subscriptions {
        let (done, wait) = oneshot::channel();
        subscription.do_send(Unsubscribe { done });
        waits.push(wait);
    }
    for registration in registrations {
        let (done, wait) = oneshot::channel();
        registration.do_send(Unregister { done });
        waits.push(wait);
    }
    let all = async {
        for wait in waits {
            let _ = wait.await;
        }
    };
    let lines = u32::try_from(registrations.len()).unwrap_or(u32::MAX);
    let grace = UNREGISTER_GRACE + UNREGISTER_GRACE_PER_LINE.saturating_mul(lines);
    if tokio::time::timeout(grace, all).await.is_err() {
        warn!("unregistration not confirmed in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_binds_the_udp_port_and_a_taken_fixed_port_is_an_error_naming_bind() {
        let (udp, tcp) = bind_sip("127.0.0.1:0".parse().unwrap(), Transport::Tcp).unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = tcp.expect("a TCP listener");
        assert_eq!(tcp.local_addr().unwrap().port(), port);
        drop(udp);
        // The UDP port is free again but TCP on it is still taken: a fixed port is not retried.
        let fixed = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let error = bind_sip(fixed, Transport::Tcp).unwrap_err().to_string();
        assert!(error.starts_with("config key `bind`: TCP on"), "{error}");
        drop(tcp);
    }
}
