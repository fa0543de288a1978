//! `dialtone-proxy`: see `dialtone_proxy::cli`.

fn main() -> std::process::ExitCode {
    dialtone_proxy::cli::main()
}
