//! `wor-hub postcodes import`: the real binary loads a CSV into the postcode table; each
//! import replaces the previous table, and a refused file leaves it as it was. The FHIR
//! API does not expose the table, so the test reads it through `Store`.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Output};

use wor_hub::config::DatabaseUrl;
use wor_hub::store::{AuditContext, Failure, PostcodeRows, Store};

use crate::helpers::{fresh_database, Backend};

const BIN: &str = env!("CARGO_BIN_EXE_wor-hub");

fn import(file: &Path, database_url: &str) -> Output {
    Command::new(BIN)
        .args(["postcodes", "import"])
        .arg(file)
        .args(["--database-url", database_url])
        .env_remove("WOR_HUB_CONFIG")
        .output()
        .expect("run wor-hub")
}

async fn lookup(store: &Store, pc4: u16, pc6: Option<&'static str>) -> PostcodeRows {
    let ctx = AuditContext {
        request_id: "test".into(),
        actor: "test".into(),
    };
    store
        .transaction(ctx, move |tx| {
            tx.postcode_lookup(pc4, pc6)
                .map_err(Failure::<Infallible>::from)
        })
        .await
        .unwrap()
}

fn rows(pc6: Option<&str>, pc4: &[&str]) -> PostcodeRows {
    PostcodeRows {
        loaded: true,
        pc6: pc6.map(str::to_owned),
        pc4: pc4.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn import_replaces_the_table_and_a_bad_file_changes_nothing(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend) else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::parse(&url).unwrap(), 1)
        .await
        .unwrap();
    assert_eq!(lookup(&store, 2771, None).await, PostcodeRows::default());

    // CBS style: a row per house number; 2771ZZ lies across the border in Enschede's
    // code only to give PC4 2771 two municipalities.
    let cbs = files.path().join("pc6hnr.csv");
    std::fs::write(
        &cbs,
        "\u{feff}PC6;Huisnummer;Buurt2023;Wijk2023;Gemeente2023\n\
         2771AB;1;04840101;048401;484\n\
         2771AB;3;04840101;048401;484\n\
         2771ZZ;2;01530000;015300;153\n\
         7511AA;2;01530000;015300;153\n",
    )
    .unwrap();
    let out = import(&cbs, &url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 3 postcodes (PC6: 3, PC4: 0) from"),
        "{stdout}"
    );
    assert_eq!(
        lookup(&store, 2771, Some("2771AB")).await,
        rows(Some("GM0484"), &["GM0153", "GM0484"])
    );
    assert_eq!(
        lookup(&store, 7511, Some("7511AB")).await,
        rows(None, &["GM0153"])
    );
    assert_eq!(lookup(&store, 1234, None).await, rows(None, &[]));

    // A PC4 file replaces the whole table: the PC6 rows are gone.
    let pc4 = files.path().join("pc4.csv");
    std::fs::write(
        &pc4,
        "postcode,gemeentecode\n\"2771\",GM0484\n2405,GM0484\n",
    )
    .unwrap();
    let out = import(&pc4, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 postcodes (PC6: 0, PC4: 2)"));
    assert_eq!(
        lookup(&store, 2771, Some("2771AB")).await,
        rows(None, &["GM0484"])
    );
    assert_eq!(lookup(&store, 7511, None).await, rows(None, &[]));
    let last = store.last_postcode_import().await.unwrap().unwrap();
    assert_eq!((last.rows, last.source.ends_with("pc4.csv")), (2, true));

    // A refused file (its error on line 3, after a valid row) stores nothing.
    let bad = files.path().join("bad.csv");
    std::fs::write(&bad, "postcode,gemeentecode\n7511,GM0153\n2771,GM9999\n").unwrap();
    let out = import(&bad, &url);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.csv") && stderr.contains("line 3") && stderr.contains("GM9999"),
        "{stderr}"
    );
    assert_eq!(lookup(&store, 7511, None).await, rows(None, &[]));
    assert_eq!(lookup(&store, 2405, None).await, rows(None, &["GM0484"]));
    let out = import(&files.path().join("missing.csv"), &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
    let again = store.last_postcode_import().await.unwrap().unwrap();
    assert_eq!(again, last);
}

#[tokio::test]
async fn sqlite_import_replaces_the_table_and_a_bad_file_changes_nothing() {
    import_replaces_the_table_and_a_bad_file_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn postgres_import_replaces_the_table_and_a_bad_file_changes_nothing() {
    import_replaces_the_table_and_a_bad_file_changes_nothing(Backend::Postgres).await;
}

#[test]
fn configuration_errors_exit_with_2() {
    let out = import(Path::new("postcodes.csv"), "mysql://localhost/hub");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}
