//! The device's configuration: one typed [`Config`], built once at start from the TOML file
//! (`--config FILE`, read into [`FileConfig`]) with the command-line flags ([`Overrides`], filled
//! by `main.rs`) laid on top, then validated. Every error names the key it came from, using
//! the TOML key names (which are also the flag names, `_` for `-`).
//!
//! Everything else (`app.rs` and the actors) receives the finished [`Config`] and never reads
//! the environment or the file again.
//!
//! This file holds the typed [`Config`] and [`Config::build`]; `config/file.rs` the file and
//! flags as written, `config/lines.rs` the `[[line]]` tables and banks ([`LineConfig`]),
//! `config/values.rs` one value's text to its type ([`ProxyAddress`], [`AudioIn`],
//! [`CodecName`]). The arrows run from here to those three, and from `lines` to the other two.
//!
//! ```toml
//! proxy = "127.0.0.1:5060"          # IP or domain, optional port; or a list, primary first:
//!                                  # ["10.0.0.1:5060", "10.0.0.2:5060"] (backups)
//! proxy_fallback_interval = 30      # seconds between OPTIONS to the primary while on a backup
//! dns = ["127.0.0.1:5353"]          # DNS servers (IP[:PORT]); default /etc/resolv.conf
//! t1_ms = 500                       # RFC 3261 T1 (Timer F, B = 64 T1)
//! bind = "127.0.0.1:0"              # SIP UDP socket (and TCP listener); port 0 picks a free one
//! transport = "udp"                 # or "tcp": requests over TCP, listening on the bind port
//! rtp_ports = "16384-16482"
//! register_interval = 3600          # seconds; 0 = do not register
//! codecs = "pcmu,pcma"              # opus, g729 too when built with --features opus, g729
//! dial_plan = "(xxxx|9xxxxxxx.)"    # see dial_plan.rs; empty = digits then # or timeout
//! interdigit_timeout = 5            # seconds
//! control = "127.0.0.1:8070"
//! line_backend = "virtual"          # or "usb" with --features usb-handset
//! auto_answer = 0                   # seconds of ringing before answering; 0 = never
//! mwi_server = "127.0.0.1:5060"     # where registering lines subscribe to message waiting;
//!                                  # default the proxy; "none" = nowhere
//!
//! [[line]]
//! user = "8000"
//! password = "8000"
//! display_name = "Lab phone"       # optional
//! auth_user = "8000"               # optional, defaults to user
//! audio_in = "tone:1000"           # WAV file, tone:HZ or silence
//! audio_out = "/tmp/8000.wav"      # optional recording of what the handset hears;
//!                                  # {user} is replaced by the line's user
//! usb_audio_device = "USB Phone"   # line_backend = "usb": the ALSA card whose cpal name
//!                                  # contains this (any case); absent = the default card
//! usb_hid_device = "/dev/hidraw3"  # line_backend = "usb": hook and keypad, /dev/hidraw* or
//!                                  # /dev/input/event*; absent = the first hidraw device
//!                                  # whose report descriptor has a Hook Switch (usage page
//!                                  # 0x0B), see line/usb/detect.rs
//!
//! [[line]]                         # a bank of lines for a load test: users 2000 to 2099,
//! user = "2000"                    # all with this table's password and audio
//! count = 100
//! ```
mod features;
mod file;
mod lines;
mod values;

use std::net::SocketAddr;
use std::time::Duration;

use crate::dial_plan::DialPlan;
use crate::error::AtaError;
use crate::features::Features;
use dialtone_transaction::Transport;
pub use file::{FileConfig, FileLine, OneOrMany, Overrides};
use lines::merge_lines;
pub use lines::{LineConfig, MAX_LINES};
pub use values::{parse_audio_in, parse_proxy, AudioIn, CodecName, ProxyAddress};
use values::{parse_codecs, parse_dns_server, parse_port_range, parse_socket, seconds};

/// Which hardware a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineBackend {
    /// Driven by the control API, audio from and to files.
    Virtual,
    /// A USB handset (feature `usb-handset`).
    Usb,
}

/// The validated configuration of one device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Outbound proxies and registrars, the primary first, then its backups (issue 21 item
    /// 5); empty = only direct calls to IP addresses.
    pub proxies: Vec<ProxyAddress>,
    /// While a line is on a backup proxy, how often the primary is asked (OPTIONS) whether
    /// it is back.
    pub proxy_fallback_interval: Duration,
    /// DNS servers to ask; empty = the system's.
    pub dns: Vec<SocketAddr>,
    /// RFC 3261 T1 for our transactions (Timer B and F are 64 T1).
    pub t1: Duration,
    /// The lines, at least one.
    pub lines: Vec<LineConfig>,
    /// The SIP socket.
    pub bind: SocketAddr,
    /// What our requests travel on; with TCP we also listen on `bind`'s port.
    pub transport: Transport,
    /// RTP port range, inclusive.
    pub rtp_ports: (u16, u16),
    /// The Expires we ask for; zero disables registration.
    pub register_interval: u32,
    /// Offered codecs, in preference order.
    pub codecs: Vec<CodecName>,
    /// How dialled digits become a call.
    pub dial_plan: DialPlan,
    /// Silence after the last digit before the number is taken as complete.
    pub interdigit_timeout: Duration,
    /// The HTTP control API.
    pub control: SocketAddr,
    /// The line hardware.
    pub line_backend: LineBackend,
    /// Ringing time before answering by itself; `None` = never.
    pub auto_answer: Option<Duration>,
    /// Every line's features (call waiting, forwards, star codes...).
    pub features: Features,
    /// Where lines subscribe to message-summary; `None` = nowhere.
    pub mwi_server: Option<ProxyAddress>,
}

/// Defaults, as documented in the README and `--help`.
pub const DEFAULT_BIND: &str = "127.0.0.1:0";
/// RTP ports: the ATA 186's own default range start, 50 pairs.
pub const DEFAULT_RTP_PORTS: (u16, u16) = (16384, 16482);
/// Registration Expires asked for.
pub const DEFAULT_REGISTER_INTERVAL: u32 = 3600;
/// Control API address.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:8070";
/// Seconds between OPTIONS probes of the primary proxy while on a backup (the Cisco ATA's
/// proxy fallback interval).
pub const DEFAULT_PROXY_FALLBACK_INTERVAL: f64 = 30.0;
/// RFC 3261 T1, milliseconds.
pub const DEFAULT_T1_MS: u64 = 500;
/// Seconds of silence that end a number (the ATA 186 default is 10; 5 is kinder in a lab).
pub const DEFAULT_INTERDIGIT_TIMEOUT: f64 = 5.0;

impl Config {
    /// Lays `flags` over `file`, fills defaults and validates.
    pub fn build(file: FileConfig, flags: Overrides) -> Result<Config, AtaError> {
        let features = features::build_features(&file)?;
        let mwi_server = match file.mwi_server.as_deref().map(str::trim) {
            Some("none") | Some("") => None,
            Some(text) => Some(parse_proxy(text).map_err(|e| match e {
                AtaError::Config { reason, .. } => AtaError::config("mwi_server", reason),
                other => other,
            })?),
            None => None,
        };
        let use_proxy_for_mwi = file.mwi_server.is_none();
        let lines = merge_lines(file.line, &flags)?;
        let proxy_texts = if flags.proxy.is_empty() {
            file.proxy.map(OneOrMany::into_vec).unwrap_or_default()
        } else {
            flags.proxy
        };
        let proxies = proxy_texts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| parse_proxy(p))
            .collect::<Result<Vec<_>, _>>()?;
        let dns_texts = if flags.dns.is_empty() {
            file.dns.map(OneOrMany::into_vec).unwrap_or_default()
        } else {
            flags.dns
        };
        let dns = dns_texts
            .iter()
            .map(|text| parse_dns_server(text))
            .collect::<Result<Vec<_>, _>>()?;
        let t1_ms = flags.t1_ms.or(file.t1_ms).unwrap_or(DEFAULT_T1_MS);
        if !(1..=60_000).contains(&t1_ms) {
            return Err(AtaError::config("t1_ms", "must be 1 to 60000"));
        }
        let proxy_fallback_interval = seconds(
            "proxy_fallback_interval",
            flags
                .proxy_fallback_interval
                .or(file.proxy_fallback_interval)
                .unwrap_or(DEFAULT_PROXY_FALLBACK_INTERVAL),
        )?;
        if proxy_fallback_interval.is_zero() {
            return Err(AtaError::config(
                "proxy_fallback_interval",
                "must be above zero",
            ));
        }
        let bind = parse_socket(
            "bind",
            flags.bind.or(file.bind).as_deref().unwrap_or(DEFAULT_BIND),
        )?;
        let transport_text = flags
            .transport
            .or(file.transport)
            .unwrap_or_else(|| "udp".into())
            .to_ascii_lowercase();
        let transport: Transport = transport_text.parse().map_err(|_| {
            AtaError::config(
                "transport",
                format!("`{transport_text}` is neither `udp` nor `tcp`"),
            )
        })?;
        let rtp_ports = match flags.rtp_ports.or(file.rtp_ports) {
            Some(text) => parse_port_range(&text)?,
            None => DEFAULT_RTP_PORTS,
        };
        let register_interval = flags
            .register_interval
            .or(file.register_interval)
            .unwrap_or(DEFAULT_REGISTER_INTERVAL);
        let codecs = parse_codecs(
            flags
                .codecs
                .or(file.codecs)
                .as_deref()
                .unwrap_or("pcmu,pcma"),
        )?;
        let dial_plan = DialPlan::parse(&flags.dial_plan.or(file.dial_plan).unwrap_or_default())
            .map_err(|reason| AtaError::config("dial_plan", reason))?;
        let interdigit_timeout = seconds(
            "interdigit_timeout",
            flags
                .interdigit_timeout
                .or(file.interdigit_timeout)
                .unwrap_or(DEFAULT_INTERDIGIT_TIMEOUT),
        )?;
        if interdigit_timeout.is_zero() {
            return Err(AtaError::config("interdigit_timeout", "must be above zero"));
        }
        let control = parse_socket(
            "control",
            flags
                .control
                .or(file.control)
                .as_deref()
                .unwrap_or(DEFAULT_CONTROL),
        )?;
        let line_backend = match flags
            .line_backend
            .or(file.line_backend)
            .as_deref()
            .unwrap_or("virtual")
        {
            "virtual" => LineBackend::Virtual,
            "usb" if cfg!(feature = "usb-handset") => LineBackend::Usb,
            "usb" => {
                return Err(AtaError::config(
                    "line_backend",
                    "`usb` needs a build with --features usb-handset",
                ))
            }
            other => {
                return Err(AtaError::config(
                    "line_backend",
                    format!("`{other}` is neither `virtual` nor `usb`"),
                ))
            }
        };
        let auto_answer = seconds(
            "auto_answer",
            flags.auto_answer.or(file.auto_answer).unwrap_or(0.0),
        )?;
        Ok(Config {
            proxies: proxies.clone(),
            proxy_fallback_interval,
            dns,
            t1: Duration::from_millis(t1_ms),
            lines,
            bind,
            transport,
            rtp_ports,
            register_interval,
            codecs,
            dial_plan,
            interdigit_timeout,
            control,
            line_backend,
            auto_answer: (!auto_answer.is_zero()).then_some(auto_answer),
            features,
            // Message waiting comes from the proxy unless another server is named.
            mwi_server: if use_proxy_for_mwi {
                proxies.into_iter().next()
            } else {
                mwi_server
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_with_line() -> Overrides {
        Overrides {
            lines: vec!["8000:secret".into()],
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_fill_everything_the_flags_leave_out() {
        let config = Config::build(FileConfig::default(), flags_with_line()).expect("valid");
        assert_eq!(config.bind, "127.0.0.1:0".parse().expect("addr"));
        assert_eq!(config.rtp_ports, (16384, 16482));
        assert_eq!(config.register_interval, 3600);
        assert_eq!(config.codecs, [CodecName::Pcmu, CodecName::Pcma]);
        assert_eq!(config.control, "127.0.0.1:8070".parse().expect("addr"));
        assert_eq!(config.interdigit_timeout, Duration::from_secs(5));
        assert_eq!(config.lines[0].user, "8000");
        assert_eq!(config.lines[0].password, "secret");
        assert_eq!(config.auto_answer, None);
        assert!(config.proxies.is_empty());
        assert_eq!(config.proxy_fallback_interval, Duration::from_secs(30));
        assert_eq!(config.t1, Duration::from_millis(500));
        assert!(config.dns.is_empty());
    }

    #[test]
    fn flags_override_the_file_but_keep_its_line_details() {
        let file = FileConfig::parse(
            "proxy = \"sip.example.net\"\nregister_interval = 600\n\
             [[line]]\nuser = \"1\"\npassword = \"x\"\ndisplay_name = \"Lab\"\n\
             audio_in = \"tone:1000\"\n",
        )
        .expect("toml");
        let flags = Overrides {
            proxy: vec!["127.0.0.1:5070".into()],
            lines: vec!["8000:8000".into()],
            ..Overrides::default()
        };
        let config = Config::build(file, flags).expect("valid");
        assert_eq!(
            config.proxies,
            [ProxyAddress {
                host: "127.0.0.1".into(),
                port: Some(5070)
            }]
        );
        assert_eq!(config.register_interval, 600);
        assert_eq!(config.lines[0].user, "8000");
        assert_eq!(config.lines[0].display_name.as_deref(), Some("Lab"));
        assert_eq!(config.lines[0].audio_in, AudioIn::Tone(1000.0));
    }

    #[test]
    fn proxy_and_dns_take_one_value_or_a_list_and_repeated_flags_replace_the_file() {
        let file = FileConfig::parse(
            "proxy = [\"10.0.0.1\", \"backup.lab:5070\"]\ndns = \"127.0.0.1:5353\"\n\
             proxy_fallback_interval = 0.5\nt1_ms = 50\n",
        )
        .expect("toml");
        let config = Config::build(file, flags_with_line()).expect("valid");
        let hosts: Vec<&str> = config.proxies.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(hosts, ["10.0.0.1", "backup.lab"]);
        assert_eq!(config.proxies[1].port, Some(5070));
        assert_eq!(config.dns, ["127.0.0.1:5353".parse().expect("addr")]);
        assert_eq!(config.proxy_fallback_interval, Duration::from_millis(500));
        assert_eq!(config.t1, Duration::from_millis(50));
        assert_eq!(config.mwi_server.as_ref(), config.proxies.first());
        let file = FileConfig::parse("proxy = [\"10.0.0.1\", \"10.0.0.2\"]\n").expect("toml");
        let flags = Overrides {
            proxy: vec!["10.0.0.9".into()],
            dns: vec!["10.0.0.53".into()],
            ..flags_with_line()
        };
        let config = Config::build(file, flags).expect("valid");
        assert_eq!(config.proxies.len(), 1);
        assert_eq!(config.dns, ["10.0.0.53:53".parse().expect("addr")]);
        for (flags, key) in [
            (
                Overrides {
                    dns: vec!["dns.example".into()],
                    ..flags_with_line()
                },
                "dns",
            ),
            (
                Overrides {
                    t1_ms: Some(0),
                    ..flags_with_line()
                },
                "t1_ms",
            ),
            (
                Overrides {
                    proxy_fallback_interval: Some(0.0),
                    ..flags_with_line()
                },
                "proxy_fallback_interval",
            ),
        ] {
            let error = Config::build(FileConfig::default(), flags).expect_err("invalid");
            assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(Overrides, &str); 5] = [
            (
                Overrides {
                    rtp_ports: Some("9-3".into()),
                    ..flags_with_line()
                },
                "rtp_ports",
            ),
            (
                Overrides {
                    codecs: Some("g729".into()),
                    ..flags_with_line()
                },
                "codecs",
            ),
            (
                Overrides {
                    bind: Some("localhost".into()),
                    ..flags_with_line()
                },
                "bind",
            ),
            (
                Overrides {
                    audio_in: Some("tone:9000".into()),
                    ..flags_with_line()
                },
                "audio_in",
            ),
            (Overrides::default(), "line"),
        ];
        for (flags, key) in cases {
            let error = Config::build(FileConfig::default(), flags).expect_err("invalid");
            assert!(
                error.to_string().contains(&format!("`{key}`")),
                "{error} should name {key}"
            );
        }
    }

    #[test]
    fn g729_is_offered_in_its_place_with_the_g729_feature_and_named_as_missing_without() {
        let flags = Overrides {
            codecs: Some("pcmu,g729,pcma".into()),
            ..flags_with_line()
        };
        match Config::build(FileConfig::default(), flags) {
            Ok(config) if cfg!(feature = "g729") => assert_eq!(
                config.codecs,
                [CodecName::Pcmu, CodecName::G729, CodecName::Pcma]
            ),
            Err(error) if !cfg!(feature = "g729") => {
                let error = error.to_string();
                assert!(error.contains("`codecs`"), "{error}");
                assert!(error.contains("the `g729` feature"), "{error}");
            }
            Ok(_) => panic!("g729 accepted without the g729 feature"),
            Err(error) => panic!("g729 refused with the g729 feature: {error}"),
        }
    }

    #[test]
    fn a_line_table_with_a_count_makes_that_many_numbered_lines() {
        let file = FileConfig::parse(
            "[[line]]\nuser = \"2000\"\npassword = \"pw\"\ncount = 100\n\
             audio_out = \"/tmp/{user}.wav\"\n[[line]]\nuser = \"alice\"\n",
        )
        .expect("toml");
        let config = Config::build(file, Overrides::default()).expect("valid");
        assert_eq!(config.lines.len(), 101);
        assert_eq!(config.lines[0].user, "2000");
        assert_eq!(config.lines[99].user, "2099");
        assert_eq!(config.lines[99].password, "pw");
        assert_eq!(
            config.lines[99].audio_out.as_deref(),
            Some(std::path::Path::new("/tmp/2099.wav"))
        );
        assert_eq!(config.lines[100].user, "alice");
        let bad = FileConfig::parse("[[line]]\nuser = \"bob\"\ncount = 2\n").expect("toml");
        let error = Config::build(bad, Overrides::default()).expect_err("not a number");
        assert!(error.to_string().contains("`count`"), "{error}");
    }

    #[test]
    fn usb_device_keys_come_from_the_line_table_and_flags_win() {
        let file = FileConfig::parse(
            "[[line]]\nuser = \"1\"\nusb_audio_device = \"Yealink\"\n\
             usb_hid_device = \"/dev/hidraw2\"\n[[line]]\nuser = \"2\"\n",
        )
        .expect("toml");
        let config = Config::build(file, Overrides::default()).expect("valid");
        assert_eq!(config.lines[0].usb_audio_device.as_deref(), Some("Yealink"));
        assert_eq!(
            config.lines[0].usb_hid_device.as_deref(),
            Some(std::path::Path::new("/dev/hidraw2"))
        );
        assert_eq!(config.lines[1].usb_hid_device, None);
        let flags = Overrides {
            lines: vec!["8000".into()],
            usb_hid_device: Some("/dev/input/event7".into()),
            ..Overrides::default()
        };
        let config = Config::build(FileConfig::default(), flags).expect("valid");
        assert_eq!(
            config.lines[0].usb_hid_device.as_deref(),
            Some(std::path::Path::new("/dev/input/event7"))
        );
    }

    #[test]
    fn bad_usb_device_values_name_their_key() {
        for (flags, key) in [
            (
                Overrides {
                    usb_hid_device: Some("/dev/sda".into()),
                    ..flags_with_line()
                },
                "usb_hid_device",
            ),
            (
                Overrides {
                    usb_audio_device: Some("  ".into()),
                    ..flags_with_line()
                },
                "usb_audio_device",
            ),
        ] {
            let error = Config::build(FileConfig::default(), flags).expect_err("invalid");
            assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused_with_their_name() {
        let error = FileConfig::parse("prxy = \"x\"").expect_err("unknown key");
        assert!(error.to_string().contains("prxy"), "{error}");
    }

    #[test]
    fn proxy_accepts_names_ips_and_ports() {
        assert_eq!(
            parse_proxy("proxy.lab:5080").expect("valid"),
            ProxyAddress {
                host: "proxy.lab".into(),
                port: Some(5080)
            }
        );
        assert_eq!(parse_proxy("10.0.0.1").expect("valid").port, None);
        assert_eq!(parse_proxy("[::1]:5060").expect("valid").host, "::1");
        assert!(parse_proxy("bad host").is_err());
    }
}
