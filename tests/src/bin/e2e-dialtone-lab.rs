//! `dialtone-lab`, built inside the test package (see Cargo.toml).

fn main() -> std::process::ExitCode {
    dialtone_lab::cli::main()
}
