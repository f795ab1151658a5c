//! Unit tests of the settings loader.

use super::*;

#[test]
fn database_url_forms() {
    assert_eq!(
        DatabaseUrl::parse("x.db").unwrap(),
        DatabaseUrl::Sqlite("x.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
        DatabaseUrl::Sqlite("/tmp/x.db".into())
    );
    assert!(matches!(
        DatabaseUrl::parse("postgresql://u:p@h/db").unwrap(),
        DatabaseUrl::Postgres(_)
    ));
    assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    assert!(DatabaseUrl::parse(":memory:").is_err());
}

#[test]
fn password_is_redacted() {
    let url = DatabaseUrl::parse("postgres://hub:secret@db:5432/hub").unwrap();
    assert_eq!(url.redacted(), "postgres://hub:***@db:5432/hub");
}

#[test]
fn flags_override_file_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n",
    )
    .unwrap();
    let args = ConfigArgs {
        config: Some(path.clone()),
        max_body_bytes: Some(8192),
        ..ConfigArgs::default()
    };
    let s = Settings::load(&args).unwrap();
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.max_body_bytes, 8192);

    std::fs::write(&path, "listen = \"nonsense\"\n").unwrap();
    let err = Settings::load(&args).unwrap_err().to_string();
    assert!(err.contains("listen"), "{err}");

    std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let err = Settings::load(&args).unwrap_err().to_string();
    assert!(err.contains("lisen"), "{err}");
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/wor-hub.example.toml")
}

#[test]
fn shipped_example_config_is_valid() {
    let args = ConfigArgs {
        config: Some(example_path()),
        ..ConfigArgs::default()
    };
    let s = Settings::load(&args).unwrap();
    assert!(matches!(s.database, DatabaseUrl::Postgres(_)));
    assert!(
        s.base_url.is_some(),
        "the example sets base_url, as production should"
    );
    assert_eq!(s.request_retention.as_secs(), 24 * 3600);
    assert_eq!(s.initial_directory, InitialDirectory::None);
    assert_eq!(s.contact_deadline.as_secs(), 14 * 86_400);
    assert!(!s.open_mode);
    assert_eq!(s.body_timeout.as_secs(), 30);
    assert_eq!(s.head_timeout.as_secs(), 5);
}
