//! deploy/wor-hub.example.toml is the annotated list of every setting: this test
//! keeps it complete, so it cannot drift from the configuration code (src/config.rs).

use std::path::{Path, PathBuf};

use wor_hub::config::{ConfigArgs, InitialDirectory, Settings};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/wor-hub.example.toml")
}

/// deploy/wor-hub.example.toml cannot drift: every setting is set in it (so the real
/// loader checks its value), and the comment above it names its flag, its environment
/// variable and the default the `--help` text states.
#[test]
fn example_config_lists_every_setting() {
    use clap::Args as _;
    let text = std::fs::read_to_string(example_path()).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    // The server's own loader accepts it (unknown keys and bad values are refused).
    let loaded = Settings::load(&ConfigArgs {
        config: Some(example_path()),
        ..ConfigArgs::default()
    })
    .unwrap();

    // Exhaustive on purpose (no `..`): a new Settings field does not compile here
    // until it is mapped to its key (or declared not configurable).
    let Settings {
        listen: _,
        database: _,
        max_body_bytes: _,
        max_bundle_entries: _,
        base_url: _,
        db_pool_size: _,
        log: _,
        log_format: _,
        request_retention: _,
        initial_directory: _,
        contact_deadline: _,
        overdue_check_interval: _,
        notification_retry_horizon: _,
        notification_lease: _,
        open_mode: _,
        allow_open_network: _,
        access_token_lifetime: _,
        clients: _, // [[clients]] tables, no flag (`wor-hub client add` instead)
        body_timeout: _,
        head_timeout: _,
        tls: _,
        behind_proxy: _,
        metrics: _,
        report_minimum_cell: _,
        clock: _, // not configurable: tests move it
    } = loaded;
    let settings_keys = [
        "listen",
        "database_url",
        "max_body_bytes",
        "max_bundle_entries",
        "base_url",
        "db_pool_size",
        "log",
        "log_format",
        "request_retention",
        "initial_directory",
        "contact_deadline",
        "overdue_check_interval",
        "notification_retry_horizon",
        "notification_lease",
        "open_mode",
        "allow_open_network",
        "access_token_lifetime",
        "body_timeout",
        "head_timeout",
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "behind_proxy",
        "metrics",
        "report_minimum_cell",
    ];
    for key in settings_keys {
        assert!(table.contains_key(key), "{key} is not set in the example");
    }

    let cmd = ConfigArgs::augment_args(clap::Command::new("wor-hub"));
    let mut flags = 0;
    for arg in cmd.get_arguments() {
        let long = arg.get_long().unwrap();
        if long == "config" {
            continue;
        }
        flags += 1;
        let key = long.replace('-', "_");
        assert!(
            settings_keys.contains(&key.as_str()),
            "--{long}: no Settings field"
        );
        let help = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let default = help
            .split_once("[default: ")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(d, _)| d)
            .unwrap_or_else(|| panic!("--{long}: its help states no [default: ...]"));
        let env = arg.get_env().unwrap().to_str().unwrap();
        let comment = comment_above(&text, &key)
            .unwrap_or_else(|| panic!("{key}: no `{key} = ...` line in the example"));
        for needle in [
            format!("--{long}"),
            env.to_owned(),
            format!("default: {default}"),
        ] {
            assert!(
                comment.contains(&needle),
                "the comment above `{key}` in the example does not say `{needle}`: {comment}"
            );
        }
    }
    assert_eq!(flags, settings_keys.len(), "a Settings key without a flag");
}

/// The comment lines right above `key = ...`, joined with single spaces.
fn comment_above(text: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_once('=').map(|(k, _)| k.trim()) == Some(key))?;
    let comment: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let words: Vec<&str> = comment
        .iter()
        .rev()
        .flat_map(|l| l.split_whitespace())
        .collect();
    Some(words.join(" "))
}

/// The wor-hub.toml of the ConfigMap in deploy/kubernetes.yaml loads with the real loader,
/// and sets what a shared production deployment needs.
#[test]
fn kubernetes_configmap_config_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("deploy/kubernetes.yaml")).unwrap();
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "wor-hub.toml: |");
    assert!(lines.next().is_some(), "no wor-hub.toml in the ConfigMap");
    let toml: String = lines
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(toml.contains("base_url"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wor-hub.toml");
    std::fs::write(&path, &toml).unwrap();
    let s = Settings::load(&ConfigArgs {
        config: Some(path),
        ..ConfigArgs::default()
    })
    .unwrap();
    assert_eq!(
        s.listen.ip().to_string(),
        "0.0.0.0",
        "probes reach the pod's IP"
    );
    assert!(s.base_url.is_some());
    assert!(!s.open_mode);
    assert!(s.behind_proxy, "the Ingress terminates TLS");
    assert_eq!(s.initial_directory, InitialDirectory::None);
}
