//! `dialtone-proxy`, built inside the test package (see Cargo.toml).
//!
//! One difference: the real binary keeps registrations in `dialtone-data` under the working
//! directory unless told otherwise, and tests start many proxies side by side from the same
//! directory (redb locks its file). So unless a test names `--data-dir`, `--location` or
//! `--memory-only`,
//! each proxy here persists to a directory of its own under the temp dir, removed when it
//! exits cleanly, or by the test's `Process` when it kills the proxy.

fn main() -> std::process::ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is_ctl = args.get(1).is_some_and(|a| a == "ctl");
    let chooses = is_ctl
        || args.iter().any(|a| {
            a == "--data-dir"
                || a == "--location"
                || a == "--memory-only"
                || a.to_string_lossy().starts_with("--data-dir=")
                || a.to_string_lossy().starts_with("--location=")
        });
    let own_dir = (!chooses).then(|| {
        std::env::temp_dir().join(format!("dialtone-e2e-proxy-data-{}", std::process::id()))
    });
    if let Some(dir) = &own_dir {
        args.push("--data-dir".into());
        args.push(dir.into());
    }
    let code = dialtone_proxy::cli::main_with_args(args);
    if let Some(dir) = own_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}
