//! The SIP message text the proxy tests send: seed messages (`tests/data/seed-flows/`)
//! rewritten for loopback addresses, plain requests from a test UA, responses built from a
//! received request, header edits with Content-Length kept true, and digest answers computed
//! from the proxy's real challenge. What arrives is read with [`crate::sip_client::Msg`].

use std::net::SocketAddr;

use crate::sip_client::Msg;

/// Sets Content-Length to the body's real length (adds it when missing).
pub fn fix_content_length(message: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap_or((message, ""));
    let mut lines: Vec<String> = Vec::new();
    let mut found = false;
    for line in head.split("\r\n") {
        let is_cl = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"));
        if is_cl {
            found = true;
            lines.push(format!("Content-Length: {}", body.len()));
        } else {
            lines.push(line.to_string());
        }
    }
    if !found {
        lines.push(format!("Content-Length: {}", body.len()));
    }
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// A seed message (`tests/data/seed-flows/...`) with the seed's addresses replaced.
///
/// `hosts` maps a seed IP to a loopback `ip:port`. In the header section an IP (with or
/// without a `:5060` after it) becomes `ip:port`, so that URIs and Via sent-bys name the real
/// port: the seed's Vias have no port, and a response would otherwise go to 5060 (RFC 3261
/// section 18.2.2). In the Call-ID and the SDP body only the IP is replaced. Content-Length is
/// recomputed.
pub fn seed(path: &str, hosts: &[(&str, SocketAddr)]) -> String {
    let file = crate::data(&format!("seed-flows/{path}"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    rewrite(&text, hosts)
}

/// See [`seed`].
pub fn rewrite(text: &str, hosts: &[(&str, SocketAddr)]) -> String {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut out_lines = Vec::new();
    for line in head.split("\r\n") {
        let is_call_id = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("call-id"));
        let mut line = line.to_string();
        for (ip, addr) in hosts {
            if is_call_id {
                line = line.replace(ip, &addr.ip().to_string());
            } else {
                line = line.replace(&format!("{ip}:5060"), &addr.to_string());
                line = line.replace(ip, &addr.to_string());
            }
        }
        out_lines.push(line);
    }
    let mut body = body.to_string();
    for (ip, addr) in hosts {
        body = body.replace(ip, &addr.ip().to_string());
    }
    fix_content_length(&format!("{}\r\n\r\n{body}", out_lines.join("\r\n")))
}

/// Replaces the value of every header line named `name` with `value`.
pub fn set_header(message: &str, name: &str, value: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap_or((message, ""));
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((n, _)) if n.trim().eq_ignore_ascii_case(name) => format!("{name}: {value}"),
            _ => line.to_string(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// A response modelled on seed response `model` (its status line, Contact, Server, body...),
/// with the transaction headers taken from the received `request` (RFC 3261 section 8.2.6.2):
/// every Via line in order, the Record-Route lines (when the model has one), From, To (with
/// `to_tag` added when the request's To has none), Call-ID and CSeq.
pub fn respond_like(model: &str, request: &Msg, to_tag: Option<&str>) -> String {
    let (head, body) = model.split_once("\r\n\r\n").unwrap_or((model, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("SIP/2.0 200 OK").to_string();
    let rest: Vec<&str> = lines.collect();
    let model_has_rr = rest
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("record-route"));
    let copied = ["via", "record-route", "from", "to", "call-id", "cseq"];
    let mut out = vec![status_line];
    out.extend(request.header_lines("via"));
    if model_has_rr {
        out.extend(request.header_lines("record-route"));
    }
    out.extend(request.header_lines("from"));
    let to = request.header("to").unwrap_or_default();
    let to = match (request.tag("to"), to_tag) {
        (None, Some(tag)) => format!("{to};tag={tag}"),
        _ => to,
    };
    out.push(format!("To: {to}"));
    out.extend(request.header_lines("call-id"));
    out.extend(request.header_lines("cseq"));
    for line in rest {
        let name = line
            .split_once(':')
            .map(|(n, _)| n.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !copied.contains(&name.as_str()) {
            out.push(line.to_string());
        }
    }
    fix_content_length(&format!("{}\r\n\r\n{body}", out.join("\r\n")))
}

/// The Proxy-Authorization (or Authorization) value answering the challenge in `response`
/// (`Proxy-Authenticate` or `WWW-Authenticate`), with password = `password`.
pub fn digest_answer(
    response: &Msg,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let challenge_value = response
        .header("proxy-authenticate")
        .or_else(|| response.header("www-authenticate"))
        .unwrap_or_else(|| panic!("no challenge in {}", response.summary()));
    let challenge = dialtone_digest::Challenge::parse(&challenge_value)
        .unwrap_or_else(|e| panic!("challenge {challenge_value:?}: {e}"));
    let params = dialtone_digest::AnswerParams {
        username,
        password,
        method,
        uri,
        cnonce: "0a4f113b",
        nc: 1,
    };
    dialtone_digest::answer(&challenge, &params)
        .expect("answer the challenge")
        .to_string()
}

/// The nonce of a challenge response.
pub fn nonce_of(response: &Msg) -> String {
    let value = response
        .header("proxy-authenticate")
        .or_else(|| response.header("www-authenticate"))
        .unwrap_or_default();
    dialtone_digest::Challenge::parse(&value)
        .map(|c| c.nonce.to_string())
        .unwrap_or_default()
}

/// A plain request from a test UA: `method` to `uri` with a branch, From tag and `extra` lines.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    uri: &str,
    via_sent_by: &str,
    transport: &str,
    from_user: &str,
    to_uri: &str,
    call_id: &str,
    cseq: u32,
    extra: &[String],
    body: &str,
) -> String {
    let branch = format!(
        "z9hG4bK{}{}{}",
        call_id.len(),
        cseq,
        rand_suffix(call_id, method)
    );
    let mut lines = vec![
        format!("{method} {uri} SIP/2.0"),
        format!("Via: SIP/2.0/{transport} {via_sent_by};branch={branch}"),
        "Max-Forwards: 70".to_string(),
        format!(
            "From: <sip:{from_user}@dialtone.test>;tag={}",
            rand_suffix(call_id, "tag")
        ),
        format!("To: <{to_uri}>"),
        format!("Call-ID: {call_id}"),
        format!("CSeq: {cseq} {method}"),
    ];
    lines.extend(extra.iter().cloned());
    lines.push(format!("Content-Length: {}", body.len()));
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

fn rand_suffix(call_id: &str, method: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    call_id.hash(&mut h);
    method.hash(&mut h);
    std::process::id().hash(&mut h);
    format!("{:x}", h.finish())
}
