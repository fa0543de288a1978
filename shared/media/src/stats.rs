//! Receive statistics for one RTP source, as RFC 3550 appendix A computes them:
//! sequence validation and the extended highest sequence number (A.1), expected
//! and lost packets and the fraction lost per report interval (A.3), and
//! interarrival jitter (A.8).
//!
//! The media actor feeds every received packet's sequence, timestamp and arrival
//! instant; the RTCP timer asks for a [`ReportBlock`]; the quality metrics read
//! loss and jitter and hand them to [`crate::mos`].

use std::time::{Duration, Instant};

use crate::rtcp::{ntp_middle_32, ReportBlock};

/// A jump forward of fewer packets than this is taken as loss (A.1).
const MAX_DROPOUT: u16 = 3000;
/// A jump back of fewer packets than this is taken as reordering (A.1).
const MAX_MISORDER: u16 = 100;
/// Packets in sequence needed before a new source is believed (A.1).
const MIN_SEQUENTIAL: u32 = 2;
const SEQ_MOD: u32 = 1 << 16;

/// Receive statistics of one synchronisation source.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    ssrc: u32,
    clock_rate: u32,
    seen_any: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: i64,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<u32>,
    jitter: f64,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// Statistics for source `ssrc`, whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceiveStats {
            ssrc,
            clock_rate: clock_rate.max(1),
            seen_any: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
            epoch: None,
            last_sr: None,
        }
    }

    /// The source these statistics describe.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = i64::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Records one received packet. Returns false while the source is on
    /// probation or after a jump that A.1 does not yet believe; such packets
    /// are not counted.
    pub fn on_packet(&mut self, sequence: u16, timestamp: u32, arrival: Instant) -> bool {
        let valid = self.update_seq(sequence);
        if valid {
            self.update_jitter(timestamp, arrival);
        }
        valid
    }

    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.seen_any {
            self.seen_any = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    // Unlike A.1, the packets that passed probation count as
                    // received, so a short call's report is not off by one.
                    self.base_seq = i64::from(seq) - i64::from(MIN_SEQUENTIAL - 1);
                    self.received = u64::from(MIN_SEQUENTIAL);
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            // A big jump: the sender restarted, or this is a stray packet. Two
            // in a row from the new place are believed (A.1).
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, as A.1 does,
        // which is why `lost` can go negative.
        self.received += 1;
        true
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(epoch);
        // Arrival in RTP units, wrapping like the timestamp itself (A.8).
        let arrival_units = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u64 as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Extended highest sequence number received: cycles in the top 16 bits.
    pub fn extended_highest_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received and counted (duplicates included, as in A.1).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the first believed sequence number to the highest.
    pub fn expected(&self) -> u64 {
        if self.probation > 0 {
            return 0;
        }
        let highest = i64::from(self.cycles) + i64::from(self.max_seq);
        (highest - self.base_seq + 1).max(0) as u64
    }

    /// Cumulative packets lost; negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Fraction of expected packets lost over the whole call, 0.0 to 1.0.
    pub fn loss_fraction(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            return 0.0;
        }
        (self.lost().max(0) as f64 / expected as f64).min(1.0)
    }

    /// Interarrival jitter in RTP timestamp units (A.8).
    pub fn jitter_timestamp_units(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter as time.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate))
    }

    /// Records an RTCP sender report from this source (its 64-bit NTP
    /// timestamp and when it arrived), for the LSR and DLSR fields.
    pub fn on_sender_report(&mut self, ntp_timestamp: u64, arrival: Instant) {
        self.last_sr = Some((ntp_middle_32(ntp_timestamp), arrival));
    }

    /// The report block for our next SR or RR (A.3). Starts a new interval:
    /// the fraction lost covers the time since the previous call.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // lost_interval <= expected_interval, so this fits 8 bits.
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                // DLSR is in units of 1/65536 s (RFC 3550 6.4.1).
                let units = (delay.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32;
                (lsr, units)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_sequence: self.extended_highest_sequence(),
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    fn feed(stats: &mut ReceiveStats, start: Instant, seqs: impl IntoIterator<Item = u16>) {
        for seq in seqs {
            let n = u32::from(seq.wrapping_sub(1000));
            stats.on_packet(seq, n * 160, start + FRAME * n);
        }
    }

    #[test]
    fn a_clean_stream_has_no_loss_and_no_jitter() {
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        feed(&mut s, t0, 1000..1100);
        assert_eq!(s.received(), 100);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_highest_sequence(), 1099);
        assert!(s.jitter_timestamp_units() < 1.0);
    }

    #[test]
    fn ten_missing_packets_out_of_a_hundred_are_ten_percent_lost() {
        let mut s = ReceiveStats::new(7, 8000);
        feed(&mut s, Instant::now(), (1000..1100).filter(|q| q % 10 != 5));
        assert_eq!(s.expected(), 100);
        assert_eq!(s.received(), 90);
        assert_eq!(s.lost(), 10);
        assert!((s.loss_fraction() - 0.1).abs() < 1e-9);
        let block = s.report_block(Instant::now());
        assert_eq!(block.fraction_lost, 25); // 10/100 * 256, truncated
        assert_eq!(block.cumulative_lost, 10);
    }

    #[test]
    fn fraction_lost_covers_only_the_interval_since_the_last_report() {
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        feed(&mut s, t0, (1000..1050).filter(|&q| q != 1020));
        assert!(s.report_block(t0).fraction_lost > 0);
        feed(&mut s, t0, 1050..1100);
        let block = s.report_block(t0);
        assert_eq!(block.fraction_lost, 0);
        assert_eq!(block.cumulative_lost, 1);
    }

    #[test]
    fn the_extended_sequence_counts_a_wrap_around() {
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        for (i, seq) in (65_530u16..=65_535).chain(0..10).enumerate() {
            assert!(s.on_packet(seq, i as u32 * 160, t0 + FRAME * i as u32) || i == 0);
        }
        assert_eq!(s.extended_highest_sequence(), 65_536 + 9);
        assert_eq!(s.expected(), 16);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn a_reordered_packet_is_not_counted_as_loss() {
        let mut s = ReceiveStats::new(7, 8000);
        feed(&mut s, Instant::now(), [1000, 1001, 1003, 1002, 1004]);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_highest_sequence(), 1004);
    }

    #[test]
    fn jitter_converges_to_the_mean_deviation_of_alternating_delays() {
        // Every other packet arrives 10 ms late: |D| = 80 units each time, so
        // the A.8 estimate approaches 80 units, i.e. 10 ms at 8 kHz.
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        for n in 0..2000u32 {
            let late = if n % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            s.on_packet(n as u16, n * 160, t0 + FRAME * n + late);
        }
        assert!(
            (s.jitter_timestamp_units() - 80.0).abs() < 1.0,
            "{}",
            s.jitter_timestamp_units()
        );
        assert!((s.jitter().as_secs_f64() - 0.010).abs() < 0.0002);
    }

    #[test]
    fn a_single_stray_packet_far_away_is_ignored_but_two_resynchronise() {
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        feed(&mut s, t0, 1000..1010);
        assert!(!s.on_packet(30_000, 0, t0));
        assert_eq!(s.extended_highest_sequence(), 1009);
        assert!(s.on_packet(30_001, 160, t0));
        assert_eq!(s.extended_highest_sequence(), 30_001);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn lsr_and_dlsr_come_from_the_last_sender_report() {
        let mut s = ReceiveStats::new(7, 8000);
        let t0 = Instant::now();
        feed(&mut s, t0, 1000..1003);
        s.on_sender_report(0x1122_3344_5566_7788, t0);
        let block = s.report_block(t0 + Duration::from_millis(500));
        assert_eq!(block.last_sr, 0x3344_5566);
        assert_eq!(block.delay_since_last_sr, 32_768);
        assert_eq!(block.ssrc, 7);
    }
}
