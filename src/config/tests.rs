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

#[test]
fn clients_from_the_config_file_keep_their_secrets_out_of_debug() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k1","x":"WfE6kFTJ4rTeOgv2_Oc_Kg7IfnO2qUo4-lBe_zyU9Rfl9JTNvZSmmsaK_87fuRRK","y":"xHz1E7eK38tYr8iE0CyeY9lZMxn8NrFxJpq7eD5hvW8SaPeY-ywQ69k8hO-Ha8z4"}]}"#;
    std::fs::write(dir.path().join("gp.jwks.json"), jwks).unwrap();
    let var = "WOR_HUB_TEST_CLIENT_SECRET_CONFIG";
    std::env::set_var(var, "a-secret-from-the-environment");
    std::fs::write(
        &path,
        format!(
            "[[clients]]\nclient_id = \"gp\"\nrole = \"referrer\"\norganization = \"Organization/gp\"\n\
             jwks_file = \"gp.jwks.json\"\n\n\
             [[clients]]\nclient_id = \"tom\"\nrole = \"performer\"\norganization = \"Organization/tom\"\n\
             scopes = \"system/Task.read\"\nsecret_env = \"{var}\"\n"
        ),
    )
    .unwrap();
    let args = ConfigArgs {
        config: Some(path.clone()),
        ..ConfigArgs::default()
    };
    let s = Settings::load(&args).unwrap();
    assert_eq!(s.clients.len(), 2);
    assert_eq!(s.clients[0].jwks.as_deref(), Some(jwks));
    assert_eq!(s.clients[1].scopes.as_deref(), Some("system/Task.rs"));
    assert_eq!(
        s.clients[1].secret,
        Some(ClientSecret::Plain("a-secret-from-the-environment".into()))
    );
    let debug = format!("{s:?}");
    assert!(!debug.contains("a-secret-from-the-environment"), "{debug}");

    for (bad, needle) in [
        ("role = \"admin\"\njwks_file = \"gp.jwks.json\"", "role"),
        ("role = \"referrer\"", "public keys"),
        (
            "role = \"referrer\"\nsecret_env = \"WOR_HUB_TEST_UNSET_VAR_X\"",
            "not set",
        ),
        ("role = \"referrer\"\nsecret_hash = \"plain\"", "Argon2"),
        (
            "role = \"referrer\"\njwks = \"{\\\"keys\\\": []}\"",
            "no key",
        ),
        (
            "role = \"referrer\"\njwks_file = \"gp.jwks.json\"\nscopes = \"user/*.*\"",
            "system scope",
        ),
    ] {
        std::fs::write(
            &path,
            format!("[[clients]]\nclient_id = \"x\"\norganization = \"Organization/x\"\n{bad}\n"),
        )
        .unwrap();
        let err = Settings::load(&args).unwrap_err().to_string();
        assert!(
            err.contains("clients") && err.contains(needle),
            "{bad}: {err}"
        );
    }
}
