//! `dialtone-lab`: see `dialtone_lab::cli`.

fn main() -> std::process::ExitCode {
    dialtone_lab::cli::main()
}
