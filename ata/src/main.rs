//! The `dialtone-ata` binary; its flags are in `cli.rs`.

fn main() -> std::process::ExitCode {
    dialtone_ata::cli::main()
}
