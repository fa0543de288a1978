//! CPU time of a process, from `/proc/PID/stat` (utime + stime, fields 14 and 15), for the
//! load report's "CPU of the load generator": the same measure `tests/load/ata_100_calls.sh`
//! takes, read by the program itself before and after the run.

/// Clock ticks per second of `/proc` times: USER_HZ, 100 on every Linux architecture we run on
/// (`getconf CLK_TCK`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of process `pid` in clock ticks; `None` when it cannot be read (not Linux, the
/// process gone).
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_ticks(&text)
}

/// utime + stime from the text of a `/proc/PID/stat` file. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields count from the last `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th and stime (15) the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `ticks` over `seconds` as a percentage of one core.
pub fn percent_of_core(ticks: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    100.0 * ticks as f64 / TICKS_PER_SECOND / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_after_the_command_name() {
        let stat = "4242 (dialtone (ata) x) S 1 4242 4242 0 -1 4194304 1234 0 0 0 \
                    150 25 0 0 20 0 3 0 100 200000 500 18446744073709551615";
        assert_eq!(stat_ticks(stat), Some(175));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_a_stat_file() {
        assert!(process_ticks(std::process::id()).is_some());
    }

    #[test]
    fn ticks_become_a_share_of_one_core() {
        assert_eq!(percent_of_core(50, 1.0), 50.0);
        assert_eq!(percent_of_core(50, 0.0), 0.0);
    }
}
