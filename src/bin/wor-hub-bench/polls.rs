//! The polling searches of one server (`run.rs`): the poll, the same without
//! its time window, and the README's poll (sorted by `_lastUpdated`).

use crate::figures::Row;
use crate::http::{expect_ok, total};
use crate::load::load;
use crate::run::Ctx;
use crate::{say, OWNER};

/// The polls at the read concurrency. Their window opens at `before_run`, so their
/// matches are this phase's `acknowledged` referrals; `stored` referrals were there
/// before (0 on the empty database, where the poll without a window is the first one).
pub(crate) async fn polls(
    ctx: &Ctx<'_>,
    base: &str,
    (label, before_run): (&str, &str),
    (acknowledged, stored): (u64, u64),
    rows: &mut Vec<Row>,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    // ---- the poll: its matches are this phase's referrals only
    let window = format!("gt{before_run}");
    let (searches, matches) = poll(
        ctx,
        base,
        &[("_lastUpdated", &window)],
        (
            &format!("polling search{label}"),
            &format!("polling search{label}"),
        ),
        &format!("this phase's referrals: {acknowledged}"),
        rows,
    )
    .await?;
    if matches != acknowledged {
        problems.push(format!(
            "polling search{label}: {matches} matches, but this phase sent {acknowledged} referrals"
        ));
    }
    if searches.ok() == 0 {
        problems.push(format!("polling search{label}: nothing succeeded"));
    }
    // ---- the README's poll: the same window, sorted by `_lastUpdated`
    let (searches, matches) = poll(
        ctx,
        base,
        &[("_lastUpdated", &window), ("_sort", "_lastUpdated")],
        (
            &format!("polling search{label} sorted by _lastUpdated"),
            &format!("polling search{label}, _sort=_lastUpdated"),
        ),
        "as the README polls",
        rows,
    )
    .await?;
    if matches != acknowledged || searches.ok() == 0 {
        problems.push(format!(
            "polling search{label} sorted by _lastUpdated: {} succeeded, {matches} matches",
            searches.ok()
        ));
    }
    // ---- the same poll without its time window: every requested Task of the owner
    // (on a filled database; on the empty one it is the poll above)
    if stored > 0 {
        let (searches, matches) = poll(
            ctx,
            base,
            &[],
            (
                &format!("polling search{label} without _lastUpdated"),
                &format!("polling search{label}, every match"),
            ),
            "Task?owner=..&status=requested",
            rows,
        )
        .await?;
        if searches.ok() == 0 || matches < stored / 4 {
            problems.push(format!(
                "polling search{label} without _lastUpdated: {} succeeded, {matches} matches",
                searches.ok()
            ));
        }
    }
    Ok(())
}

/// The polling search (`Task?owner=..&status=requested`, first page of 10, with `extra`
/// parameters) at the read concurrency, said as `what` and added to `rows` as `row`,
/// with `note`: the outcome and the number of matches.
async fn poll(
    ctx: &Ctx<'_>,
    base: &str,
    extra: &[(&str, &str)],
    (what, row): (&str, &str),
    note: &str,
    rows: &mut Vec<Row>,
) -> Result<(crate::load::Outcome, u64), String> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("owner", OWNER)
        .append_pair("status", "requested")
        .extend_pairs(extra)
        .finish();
    let matches = total(&ctx.client, &format!("{base}/Task?{query}&_summary=count")).await?;
    let url = format!("{base}/Task?{query}&_count=10");
    let client = ctx.client.clone();
    let c = ctx.args.read_concurrency;
    let searches = load(c, ctx.plan.searches, move |_| {
        let (client, url) = (client.clone(), url.clone());
        async move { expect_ok(client.get(url)).await }
    })
    .await;
    let line = searches.line(
        &format!("{what} (first page of 10), concurrency {c}"),
        "searches",
    );
    say(&format!("{line}; {matches} matches ({note})"));
    rows.push(Row::of(
        format!("{row}, c{c}"),
        &searches,
        "searches",
        format!("first page of 10 out of {matches} matches; {note}"),
    ));
    Ok((searches, matches))
}
