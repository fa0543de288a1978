//! End-to-end `check-sync`: an ATA whose config file has the wrong password fails to register
//! with `dialtone-proxy` (`--auth register`); the file is corrected, and a `NOTIFY` with
//! `Event: check-sync` sent to the ATA's SIP socket is answered 200 and makes it re-read the
//! file and register at once (well before its 5 s failure back-off would retry).

use std::net::UdpSocket;
use std::time::Duration;

use dialtone_e2e::{start_ata, wait_for_line, Proxy};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn config(proxy: &str, password: &str) -> String {
    format!(
        "proxy = \"{proxy}\"\nregister_interval = 300\n\
         [[line]]\nuser = \"8000\"\npassword = \"{password}\"\n"
    )
}

#[test]
fn a_check_sync_notify_rereads_the_config_and_registers_with_the_new_password() {
    let proxy = Proxy::start(PROXY, &["--auth", "register", "--user", "8000:right"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ata.toml");
    let proxy_sip = proxy.sip.to_string();
    std::fs::write(&file, config(&proxy_sip, "wrong")).expect("config written");
    let ata = start_ata(ATA, &["--config", file.to_str().expect("utf8")]);
    wait_for_line(ata.control, 1, "registration to fail", |s| {
        s.registration == "failed"
    });

    std::fs::write(&file, config(&proxy_sip, "right")).expect("config rewritten");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = socket.local_addr().expect("addr");
    let notify = format!(
        "NOTIFY sip:8000@{ata} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKchecksync1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:provisioning@{local}>;tag=cs1\r\n\
         To: <sip:8000@{ata}>\r\n\
         Call-ID: check-sync-1@{local}\r\n\
         CSeq: 1 NOTIFY\r\n\
         Event: check-sync\r\n\
         Subscription-State: terminated\r\n\
         Content-Length: 0\r\n\r\n",
        ata = ata.sip
    );
    socket
        .send_to(notify.as_bytes(), ata.sip)
        .expect("NOTIFY sent");
    let mut buffer = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buffer).expect("an answer");
    let answer = String::from_utf8_lossy(&buffer[..len]);
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");

    let status = wait_for_line(ata.control, 1, "registered with the new password", |s| {
        s.registration == "registered"
    });
    assert_eq!(status.user, "8000");
}
