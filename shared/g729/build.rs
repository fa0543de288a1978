//! Links libbcg729: through its pkg-config file (`libbcg729.pc`, which Debian's libbcg729-dev
//! ships), else by name from the linker's default path, for installs without the .pc file.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if pkg_config::Config::new().probe("libbcg729").is_err() {
        println!("cargo:rustc-link-lib=bcg729");
    }
}
