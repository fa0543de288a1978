//! SIPp against the real proxy on loopback (scenarios in `tests/sipp/`, the bench's flows):
//! REGISTER without and with a 407 challenge, and a call UAC → proxy → UAS (`sipp` playing the
//! callee, registered first) without and with a 407 on the INVITE. Each run is bounded
//! (`-m 1`, `-timeout`), and the test asserts SIPp's exit status 0 (every call succeeded).
//!
//! A call between two baresip instances is not here yet: it needs a headless module set (no
//! audio device) and answering through ctrl_tcp, which has not been made reliable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dialtone_e2e::proxy_api::registrations;
use dialtone_e2e::sip_client::UdpPeer;
use dialtone_e2e::sip_message::{digest_answer, request};
use dialtone_e2e::{free_port, tool_available, wait_until, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const AUTH: &[&str] = &[
    "--auth",
    "all",
    "--user",
    "8000:8000",
    "--user",
    "9000:9000",
    "--realm",
    "CISCO",
];

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// A SIPp process, killed by PID if still running when dropped.
struct Sipp {
    child: Child,
    what: String,
}

impl Sipp {
    fn start(proxy: SocketAddr, xml: &str, dir: &Path, args: &[String], what: &str) -> Sipp {
        let log = std::fs::File::create(dir.join(format!("{what}.log"))).unwrap();
        let child = Command::new("sipp")
            .arg(proxy.to_string())
            .arg("-sf")
            .arg(scenario(xml))
            .args([
                "-i",
                "127.0.0.1",
                "-nostdin",
                "-trace_err",
                "-timeout",
                "30s",
            ])
            .args(["-recv_timeout", "10000", "-m", "1"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sipp");
        Sipp {
            child,
            what: what.to_string(),
        }
    }

    /// Waits (bounded) for the exit status.
    fn wait(&mut self, dir: &Path) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let log =
            std::fs::read_to_string(dir.join(format!("{}.log", self.what))).unwrap_or_default();
        panic!("sipp {} did not finish:\n{log}", self.what);
    }

    fn assert_success(&mut self, dir: &Path) {
        let status = self.wait(dir);
        if !status.success() {
            let mut logs = String::new();
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") {
                    logs += &format!(
                        "--- {name}\n{}\n",
                        std::fs::read_to_string(entry.path()).unwrap_or_default()
                    );
                }
            }
            panic!("sipp {} exited with {status}:\n{logs}", self.what);
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn users_csv(dir: &Path) -> String {
    let path = dir.join("users.csv");
    std::fs::write(
        &path,
        "SEQUENTIAL\n9000;9000;[authentication username=9000 password=9000]\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn register(extra: &[&str], xml: &str) {
    if !tool_available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(PROXY, extra);
    let csv = users_csv(dir.path());
    let args = vec![
        "-p".to_string(),
        free_port().to_string(),
        "-inf".into(),
        csv,
    ];
    Sipp::start(proxy.sip, xml, dir.path(), &args, "uac").assert_success(dir.path());
    let list = registrations(proxy.http);
    assert_eq!(list[0]["aor"], "9000", "{list}");
}

#[test]
fn sipp_registers_without_auth() {
    register(&[], "register_noauth.xml");
}

#[test]
fn sipp_registers_after_a_407_challenge() {
    register(AUTH, "register_auth.xml");
}

/// Registers 9000 at `127.0.0.1:uas_port` (answering a challenge when there is one).
fn register_callee(proxy: &Proxy, uas_port: u16) {
    let mut peer = UdpPeer::bind("127.0.0.1", proxy.sip);
    let send = |peer: &mut UdpPeer, cseq: u32, auth: Option<String>| {
        let mut extra = vec![
            format!("Contact: <sip:9000@127.0.0.1:{uas_port}>"),
            "Expires: 600".to_string(),
        ];
        extra.extend(auth.map(|a| format!("Proxy-Authorization: {a}")));
        let text = request(
            "REGISTER",
            &format!("sip:{}", proxy.sip),
            &peer.hostport(),
            "UDP",
            "9000",
            &format!("sip:9000@{}", proxy.sip.ip()),
            "sipp-callee",
            cseq,
            &extra,
            "",
        );
        peer.send(text.as_bytes());
        peer.expect("response to REGISTER")
    };
    let mut response = send(&mut peer, 1, None);
    if response.status() == Some(407) {
        let creds = digest_answer(
            &response,
            "9000",
            "9000",
            "REGISTER",
            &format!("sip:{}", proxy.sip),
        );
        response = send(&mut peer, 2, Some(creds));
    }
    assert_eq!(response.status(), Some(200), "{}", response.text());
}

fn call(extra: &[&str], xml: &str) {
    if !tool_available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(PROXY, extra);
    let uas_port = free_port();
    register_callee(&proxy, uas_port);
    let uas_args: Vec<String> = ["-p", &uas_port.to_string(), "-s", "9000"]
        .iter()
        .map(|s| s.to_string())
        .chain(["-default_behaviors".into(), "all,-abortunexp".into()])
        .collect();
    let mut uas = Sipp::start(proxy.sip, "uas.xml", dir.path(), &uas_args, "uas");
    // The UAS is ready when its port is taken (polled, bounded).
    assert!(
        wait_until(Duration::from_secs(10), || std::net::UdpSocket::bind((
            "127.0.0.1",
            uas_port
        ))
        .is_err()),
        "sipp uas did not bind {uas_port}"
    );
    let uac_args: Vec<String> = [
        "-p",
        &free_port().to_string(),
        "-s",
        "9000",
        "-key",
        "caller",
        "8000",
        "-au",
        "8000",
        "-ap",
        "8000",
        "-d",
        "100",
        "-auth_uri",
        &format!("9000@{}", proxy.sip),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Sipp::start(proxy.sip, xml, dir.path(), &uac_args, "uac").assert_success(dir.path());
    uas.assert_success(dir.path());
}

#[test]
fn sipp_call_through_the_proxy_without_auth() {
    call(&[], "call_noauth.xml");
}

#[test]
fn sipp_call_through_the_proxy_after_a_407_challenge() {
    call(AUTH, "call_auth.xml");
}
