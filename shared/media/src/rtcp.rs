//! RTCP (RFC 3550 section 6): sender and receiver reports, SDES with CNAME, and
//! BYE, built into and parsed from compound packets.
//!
//! Report blocks are filled from [`crate::ReceiveStats::report_block`]; the
//! media actor decides when to send (RFC 3550 6.2 interval) and feeds received
//! sender reports back into the statistics for LSR/DLSR. Packet types this
//! crate does not use (APP, feedback, XR) are skipped, not refused, because
//! peers send them freely inside compound packets.

use std::time::Duration;

use crate::error::MediaError;

/// RTCP packet type: sender report.
pub const RTCP_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const RTCP_RR: u8 = 201;
/// RTCP packet type: source description.
pub const RTCP_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const RTCP_BYE: u8 = 203;
/// SDES item type of CNAME.
const SDES_CNAME: u8 = 1;
/// The count fields are 5 bits.
const MAX_COUNT: usize = 31;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const REPORT_BLOCK_LEN: usize = 24;

/// A 64-bit NTP timestamp for a wall-clock time given as time since the Unix
/// epoch (the actor reads the clock; this only converts).
pub fn ntp_timestamp(since_unix_epoch: Duration) -> u64 {
    let seconds = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let fraction = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// The middle 32 bits of an NTP timestamp, the form LSR and round-trip
/// arithmetic use (RFC 3550 6.4.1).
pub fn ntp_middle_32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Loss since the previous report, as a fixed-point fraction of 256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, 24-bit signed.
    pub cumulative_lost: i32,
    /// Cycles in the high 16 bits, highest sequence number in the low 16.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp, 0 if none yet.
    pub last_sr: u32,
    /// Delay since that SR arrived, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Round-trip time to the reporter, given when this block arrived (as a
    /// 64-bit NTP timestamp): A - LSR - DLSR (RFC 3550 6.4.1). `None` before
    /// the peer has seen one of our sender reports, or if clocks disagree.
    pub fn round_trip_time(&self, arrival_ntp: u64) -> Option<Duration> {
        if self.last_sr == 0 {
            return None;
        }
        let units = ntp_middle_32(arrival_ntp)
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr);
        // A "negative" result wraps to a huge value; no real RTT is 9 hours.
        (units < 1 << 31).then(|| Duration::from_secs_f64(f64::from(units) / 65536.0))
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.extended_highest_sequence.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn parse(b: &[u8]) -> Self {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let packed = word(4);
        // Sign-extend the 24-bit cumulative count.
        let cumulative_lost = ((packed << 8) as i32) >> 8;
        ReportBlock {
            ssrc: word(0),
            fraction_lost: (packed >> 24) as u8,
            cumulative_lost,
            extended_highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// The sender information of an SR (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wall-clock time of the report, 64-bit NTP format.
    pub ntp_timestamp: u64,
    /// The same instant in the stream's RTP clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started.
    pub packet_count: u32,
    /// Payload octets sent since the stream started.
    pub octet_count: u32,
}

/// One SDES chunk; only CNAME is kept, the other items are of no use to an ATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its canonical name, if the chunk carried one.
    pub cname: Option<String>,
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR: we send media and report on what we receive.
    SenderReport {
        /// Reporter.
        ssrc: u32,
        /// What it sent.
        info: SenderInfo,
        /// What it received, up to 31 sources.
        reports: Vec<ReportBlock>,
    },
    /// RR: reception reports only.
    ReceiverReport {
        /// Reporter.
        ssrc: u32,
        /// What it received, up to 31 sources.
        reports: Vec<ReportBlock>,
    },
    /// SDES chunks.
    SourceDescription(Vec<SdesChunk>),
    /// BYE: these sources are leaving.
    Bye {
        /// Up to 31 sources.
        sources: Vec<u32>,
        /// Optional reason text.
        reason: Option<String>,
    },
    /// A packet type this crate does not interpret, skipped over.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Parses a compound RTCP datagram into its packets.
///
/// Checks what RFC 3550 A.2 asks that matters for safety: version 2, every
/// length inside the datagram, padding only where it fits. It does not insist
/// that the first packet be SR or RR, since reduced-size RTCP (RFC 5506)
/// peers omit it.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, MediaError> {
    let mut packets = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let head = rest.get(..4).ok_or(MediaError::Truncated {
            what: "RTCP header",
            len: rest.len(),
            needed: 4,
        })?;
        let version = head[0] >> 6;
        if version != 2 {
            return Err(MediaError::BadVersion {
                what: "RTCP",
                version,
            });
        }
        let count = usize::from(head[0] & 0x1f);
        let packet_type = head[1];
        let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
        let packet = rest.get(..len).ok_or(MediaError::BadRtcpLength {
            packet_type,
            claimed: len,
            available: rest.len(),
        })?;
        let mut body = &packet[4..];
        if head[0] & 0x20 != 0 {
            let pad = usize::from(packet[len - 1]);
            if pad == 0 || pad > body.len() {
                return Err(MediaError::BadPadding {
                    what: "RTCP",
                    padding: pad,
                    len,
                });
            }
            body = &body[..body.len() - pad];
        }
        packets.push(parse_one(packet_type, count, body)?);
        rest = &rest[len..];
    }
    Ok(packets)
}

fn word(b: &[u8], at: usize, what: &'static str) -> Result<u32, MediaError> {
    b.get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .ok_or(MediaError::Truncated {
            what,
            len: b.len(),
            needed: at + 4,
        })
}

fn report_blocks(
    body: &[u8],
    count: usize,
    what: &'static str,
) -> Result<Vec<ReportBlock>, MediaError> {
    let needed = count * REPORT_BLOCK_LEN;
    let bytes = body.get(..needed).ok_or(MediaError::Truncated {
        what,
        len: body.len(),
        needed,
    })?;
    Ok(bytes
        .chunks_exact(REPORT_BLOCK_LEN)
        .map(ReportBlock::parse)
        .collect())
}

fn parse_one(packet_type: u8, count: usize, body: &[u8]) -> Result<RtcpPacket, MediaError> {
    match packet_type {
        RTCP_SR => {
            let what = "RTCP sender report";
            let ntp = (u64::from(word(body, 4, what)?) << 32) | u64::from(word(body, 8, what)?);
            let info = SenderInfo {
                ntp_timestamp: ntp,
                rtp_timestamp: word(body, 12, what)?,
                packet_count: word(body, 16, what)?,
                octet_count: word(body, 20, what)?,
            };
            Ok(RtcpPacket::SenderReport {
                ssrc: word(body, 0, what)?,
                info,
                reports: report_blocks(&body[24..], count, what)?,
            })
        }
        RTCP_RR => {
            let what = "RTCP receiver report";
            Ok(RtcpPacket::ReceiverReport {
                ssrc: word(body, 0, what)?,
                reports: report_blocks(&body[4..], count, what)?,
            })
        }
        RTCP_SDES => parse_sdes(body, count),
        RTCP_BYE => {
            let what = "RTCP BYE";
            let sources = (0..count)
                .map(|i| word(body, 4 * i, what))
                .collect::<Result<Vec<_>, _>>()?;
            let reason = match body.get(4 * count) {
                Some(&n) => {
                    let start = 4 * count + 1;
                    let text =
                        body.get(start..start + usize::from(n))
                            .ok_or(MediaError::Truncated {
                                what,
                                len: body.len(),
                                needed: start + usize::from(n),
                            })?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                None => None,
            };
            Ok(RtcpPacket::Bye { sources, reason })
        }
        other => Ok(RtcpPacket::Other { packet_type: other }),
    }
}

fn parse_sdes(body: &[u8], count: usize) -> Result<RtcpPacket, MediaError> {
    let what = "RTCP SDES";
    let truncated = |needed| MediaError::Truncated {
        what,
        len: body.len(),
        needed,
    };
    let mut chunks = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let ssrc = word(body, at, what)?;
        at += 4;
        let mut cname = None;
        loop {
            let kind = *body.get(at).ok_or(truncated(at + 1))?;
            if kind == 0 {
                // The item list ends with a zero octet, then pads to a word.
                at = (at + 4) & !3;
                break;
            }
            let n = usize::from(*body.get(at + 1).ok_or(truncated(at + 2))?);
            let text = body.get(at + 2..at + 2 + n).ok_or(truncated(at + 2 + n))?;
            if kind == SDES_CNAME {
                cname = Some(String::from_utf8_lossy(text).into_owned());
            }
            at += 2 + n;
        }
        chunks.push(SdesChunk { ssrc, cname });
    }
    Ok(RtcpPacket::SourceDescription(chunks))
}

/// Zero-fills to the next 32-bit boundary of the packet that began at `start`.
fn pad_to_word(out: &mut Vec<u8>, start: usize) {
    let over = (out.len() - start) & 3;
    if over != 0 {
        out.extend(std::iter::repeat_n(0, 4 - over));
    }
}

fn too_many(what: &'static str) -> MediaError {
    MediaError::Unbuildable {
        what,
        reason: "more than 31 entries",
    }
}

impl RtcpPacket {
    /// Appends this packet, header and all, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let (count, packet_type) = match self {
            RtcpPacket::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                if reports.len() > MAX_COUNT {
                    return Err(too_many("RTCP sender report"));
                }
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
                out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
                out.extend_from_slice(&info.packet_count.to_be_bytes());
                out.extend_from_slice(&info.octet_count.to_be_bytes());
                reports.iter().for_each(|r| r.write(out));
                (reports.len(), RTCP_SR)
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                if reports.len() > MAX_COUNT {
                    return Err(too_many("RTCP receiver report"));
                }
                out.extend_from_slice(&ssrc.to_be_bytes());
                reports.iter().for_each(|r| r.write(out));
                (reports.len(), RTCP_RR)
            }
            RtcpPacket::SourceDescription(chunks) => {
                if chunks.len() > MAX_COUNT {
                    return Err(too_many("RTCP SDES"));
                }
                for chunk in chunks {
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    if let Some(cname) = &chunk.cname {
                        let text = cname.as_bytes();
                        if text.len() > 255 {
                            return Err(MediaError::Unbuildable {
                                what: "RTCP SDES",
                                reason: "CNAME over 255 bytes",
                            });
                        }
                        out.push(SDES_CNAME);
                        out.push(text.len() as u8);
                        out.extend_from_slice(text);
                    }
                    // At least one zero octet ends the list, then pad to a word.
                    out.push(0);
                    pad_to_word(out, start);
                }
                (chunks.len(), RTCP_SDES)
            }
            RtcpPacket::Bye { sources, reason } => {
                if sources.len() > MAX_COUNT {
                    return Err(too_many("RTCP BYE"));
                }
                sources
                    .iter()
                    .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                if let Some(reason) = reason {
                    let text = reason.as_bytes();
                    if text.len() > 255 {
                        return Err(MediaError::Unbuildable {
                            what: "RTCP BYE",
                            reason: "reason over 255 bytes",
                        });
                    }
                    out.push(text.len() as u8);
                    out.extend_from_slice(text);
                    pad_to_word(out, start);
                }
                (sources.len(), RTCP_BYE)
            }
            RtcpPacket::Other { .. } => {
                return Err(MediaError::Unbuildable {
                    what: "RTCP packet",
                    reason: "unknown packet types are only parsed",
                });
            }
        };
        let words = (out.len() - start) / 4 - 1;
        let length = u16::try_from(words).map_err(|_| MediaError::Unbuildable {
            what: "RTCP packet",
            reason: "longer than 65535 words",
        })?;
        // count <= 31 was checked above.
        out[start] = 0x80 | count as u8;
        out[start + 1] = packet_type;
        out[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }
}

/// Builds a compound packet from `packets` in order. RFC 3550 6.1 wants an SR
/// or RR first and an SDES with CNAME in every compound packet; see
/// [`report_compound`] for the usual one.
pub fn build_compound(packets: &[RtcpPacket]) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(128);
    for p in packets {
        p.write(&mut out)?;
    }
    Ok(out)
}

/// The regular report an ATA sends: SR if it sent media since the last
/// report (`sender_info` is `Some`), otherwise RR, followed by SDES CNAME.
pub fn report_compound(
    ssrc: u32,
    sender_info: Option<SenderInfo>,
    reports: Vec<ReportBlock>,
    cname: &str,
) -> Result<Vec<u8>, MediaError> {
    let report = match sender_info {
        Some(info) => RtcpPacket::SenderReport {
            ssrc,
            info,
            reports,
        },
        None => RtcpPacket::ReceiverReport { ssrc, reports },
    };
    let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
        ssrc,
        cname: Some(cname.to_owned()),
    }]);
    build_compound(&[report, sdes])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_sequence: 0x0001_0005,
            jitter: 80,
            last_sr: 0x3344_5566,
            delay_since_last_sr: 32_768,
        }
    }

    #[test]
    fn sender_report_with_sdes_round_trips_through_a_compound_packet() {
        let info = SenderInfo {
            ntp_timestamp: 0x1122_3344_5566_7788,
            rtp_timestamp: 160,
            packet_count: 50,
            octet_count: 8000,
        };
        let bytes = report_compound(
            0xabcd,
            Some(info),
            vec![block(1), block(2)],
            "ata@192.0.2.1",
        )
        .unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let packets = parse_compound(&bytes).unwrap();
        assert_eq!(
            packets,
            vec![
                RtcpPacket::SenderReport {
                    ssrc: 0xabcd,
                    info,
                    reports: vec![block(1), block(2)]
                },
                RtcpPacket::SourceDescription(vec![SdesChunk {
                    ssrc: 0xabcd,
                    cname: Some("ata@192.0.2.1".into())
                }]),
            ]
        );
    }

    #[test]
    fn receiver_report_has_the_rfc_3550_layout() {
        let bytes = build_compound(&[RtcpPacket::ReceiverReport {
            ssrc: 9,
            reports: vec![block(1)],
        }])
        .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..4], &[0x81, 201, 0, 7]);
        // fraction 25, cumulative -3 as 24-bit two's complement.
        assert_eq!(&bytes[12..16], &[25, 0xff, 0xff, 0xfd]);
    }

    #[test]
    fn bye_with_reason_and_empty_receiver_report_round_trip() {
        let packets = vec![
            RtcpPacket::ReceiverReport {
                ssrc: 5,
                reports: vec![],
            },
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 5,
                cname: Some("abc".into()),
            }]),
            RtcpPacket::Bye {
                sources: vec![5],
                reason: Some("hung up".into()),
            },
        ];
        let bytes = build_compound(&packets).unwrap();
        assert_eq!(parse_compound(&bytes).unwrap(), packets);
    }

    #[test]
    fn unknown_packet_types_are_skipped_not_refused() {
        let mut bytes = build_compound(&[RtcpPacket::ReceiverReport {
            ssrc: 5,
            reports: vec![],
        }])
        .unwrap();
        bytes.extend_from_slice(&[0x80, 204, 0, 1, 0, 0, 0, 5]);
        let packets = parse_compound(&bytes).unwrap();
        assert_eq!(packets[1], RtcpPacket::Other { packet_type: 204 });
    }

    #[test]
    fn a_length_past_the_datagram_is_an_error() {
        let mut bytes = build_compound(&[RtcpPacket::ReceiverReport {
            ssrc: 5,
            reports: vec![block(1)],
        }])
        .unwrap();
        bytes.truncate(20);
        assert!(matches!(
            parse_compound(&bytes),
            Err(MediaError::BadRtcpLength {
                packet_type: 201,
                ..
            })
        ));
    }

    #[test]
    fn a_report_count_larger_than_the_body_is_truncated() {
        let mut bytes = build_compound(&[RtcpPacket::ReceiverReport {
            ssrc: 5,
            reports: vec![block(1)],
        }])
        .unwrap();
        bytes[0] = 0x82;
        assert!(matches!(
            parse_compound(&bytes),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn round_trip_time_is_arrival_minus_lsr_minus_dlsr() {
        let b = ReportBlock {
            last_sr: 0x0001_0000,
            delay_since_last_sr: 0x8000,
            ..ReportBlock::default()
        };
        // The SR left at 1 s, the peer held it 0.5 s, its report arrived at 1.75 s.
        let arrival = 0x0001_c000u64 << 16;
        assert_eq!(b.round_trip_time(arrival), Some(Duration::from_millis(250)));
        assert_eq!(ReportBlock::default().round_trip_time(arrival), None);
    }

    #[test]
    fn ntp_timestamp_of_the_unix_epoch_is_2208988800_seconds() {
        assert_eq!(ntp_timestamp(Duration::ZERO), NTP_UNIX_OFFSET << 32);
        assert_eq!(
            ntp_timestamp(Duration::from_millis(500)) & 0xffff_ffff,
            1 << 31
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..80);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(b) = bytes.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let _ = parse_compound(&bytes);
        }
    }
}
