//! Sets build-time cfgs for the API tests that need something outside the crate:
//!
//! - `cfg(wor_hub_postgres_tests)` when the PostgreSQL variants can run:
//!   `WOR_HUB_TEST_POSTGRES_URL` is set, or `CI` is (where a missing PostgreSQL must fail
//!   the run, not skip it).
//! - `cfg(wor_hub_browser_tests)` when the dashboard's browser test can run: `CHROMIUM`
//!   names the browser, a `chromium` or `chromium-browser` is on `PATH`, or `CI` is set.
//!
//! Without them those tests are compiled as `#[ignore]` with a reason, so `cargo test`
//! reports them as ignored instead of passing without running.

use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(wor_hub_postgres_tests)");
    println!("cargo:rustc-check-cfg=cfg(wor_hub_browser_tests)");
    println!("cargo:rerun-if-env-changed=WOR_HUB_TEST_POSTGRES_URL");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=CHROMIUM");
    println!("cargo:rerun-if-changed=build.rs");
    let ci = std::env::var_os("CI").is_some();
    let configured = std::env::var_os("WOR_HUB_TEST_POSTGRES_URL").is_some_and(|u| !u.is_empty());
    if configured || ci {
        println!("cargo:rustc-cfg=wor_hub_postgres_tests");
    }
    let chromium = std::env::var_os("CHROMIUM").is_some_and(|c| !c.is_empty())
        || std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| {
                ["chromium", "chromium-browser"]
                    .iter()
                    .any(|name| Path::new(&dir).join(name).is_file())
            })
        });
    if chromium || ci {
        println!("cargo:rustc-cfg=wor_hub_browser_tests");
    }
}
