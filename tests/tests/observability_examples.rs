//! The deployment examples cannot rot: `deploy/examples/proxy.toml` and `ata.toml` parse with
//! the programs' own config code (as written, and with every commented-out `key = value`
//! switched on), the proxy's validates, and each file mentions every flag the program has.

use std::collections::BTreeSet;
use std::process::Command;

use dialtone_e2e::workspace_root;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("deploy/examples").join(name))
        .unwrap_or_else(|e| panic!("deploy/examples/{name}: {e}"))
}

/// The file with `# key = value` lines uncommented (prose comments stay comments).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
                }) =>
            {
                rest.to_string()
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The long flags of a program's `--help`, but the ones every program has.
fn flags(program: &str) -> BTreeSet<String> {
    let out = Command::new(program)
        .arg("--help")
        .output()
        .expect("--help");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|f| !["help", "version", "config"].contains(&f.as_str()) && !f.is_empty())
        .collect()
}

#[test]
fn the_proxy_example_parses_and_validates() {
    let text = example("proxy.toml");
    for variant in [text.clone(), uncommented(&text)] {
        let file: dialtone_proxy::config::FileConfig =
            toml::from_str(&variant).unwrap_or_else(|e| panic!("proxy.toml: {e}\n{variant}"));
        let flags = dialtone_proxy::config::ProxyFlags::default();
        let mut file = file;
        // The users file and the data directory of the example do not exist here.
        file.users = None;
        file.data_dir = None;
        // journal-sync is refused beside the Redis location of the uncommented example: it is
        // checked with the default store (redb), and the rest with the example's.
        let mut redb = file.clone();
        redb.location = None;
        dialtone_proxy::config::Config::merge(redb, &flags)
            .unwrap_or_else(|e| panic!("proxy.toml does not validate with redb: {e}"));
        file.journal_sync = None;
        let config = dialtone_proxy::config::Config::merge(file, &flags)
            .unwrap_or_else(|e| panic!("proxy.toml does not validate: {e}"));
        assert_eq!(config.http.port(), 8060);
    }
    let commented = uncommented(&text);
    assert!(
        commented.contains("\nhep = "),
        "the commented-out keys were found"
    );
}

#[test]
fn the_proxy_example_mentions_every_flag() {
    let text = uncommented(&example("proxy.toml"));
    let flags = flags(PROXY);
    assert!(
        flags.contains("listen") && flags.contains("trace-calls"),
        "{flags:?}"
    );
    let missing: Vec<_> = flags
        .iter()
        .filter(|f| !text.contains(&format!("\n{f} = ")))
        .collect();
    assert!(missing.is_empty(), "proxy.toml lacks keys {missing:?}");
}

#[test]
fn the_ata_example_parses_and_mentions_every_flag() {
    let text = example("ata.toml");
    for variant in [text.clone(), uncommented(&text)] {
        dialtone_ata::config::FileConfig::parse(&variant)
            .unwrap_or_else(|e| panic!("ata.toml: {e}\n{variant}"));
    }
    // Flags are kebab-case, keys snake_case; `--line USER:PASSWORD` is the [[line]] table and
    // `--audio-in`/`--audio-out` its keys.
    let text = uncommented(&text);
    let flags = flags(ATA);
    assert!(
        flags.contains("proxy") && flags.contains("rtp-ports"),
        "{flags:?}"
    );
    let missing: Vec<_> = flags
        .iter()
        .map(|f| {
            if f == "line" {
                "[[line]]".to_string()
            } else {
                format!("\n{} = ", f.replace('-', "_"))
            }
        })
        .filter(|key| !text.contains(key.as_str()))
        .collect();
    assert!(missing.is_empty(), "ata.toml lacks keys {missing:?}");
}
