//! The benchmark's HTTP helpers and process figures.

use serde_json::Value;

use crate::OWNER;

/// Sends the request; a 2xx answer, its body read, is a success.
pub(crate) async fn expect_ok(req: reqwest::RequestBuilder) -> Result<(), String> {
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let text = res.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let res = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    res.json().await.map_err(|e| format!("GET {url}: {e}"))
}

/// The `total` of a `_summary=count` searchset.
pub(crate) async fn total(client: &reqwest::Client, url: &str) -> Result<u64, String> {
    get_json(client, url)
        .await?
        .get("total")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("GET {url}: no total"))
}

/// Ids of up to 100 stored Tasks (the referrals' Tasks).
pub(crate) async fn task_ids(client: &reqwest::Client, base: &str) -> Result<Vec<String>, String> {
    ids_of(client, &format!("{base}/Task?owner={OWNER}&_count=100")).await
}

/// Ids of up to 100 accepted Tasks: on a filled database (`--preloaded`), the first
/// in id order, spread over the load (ids are random).
pub(crate) async fn accepted_task_ids(
    client: &reqwest::Client,
    base: &str,
) -> Result<Vec<String>, String> {
    ids_of(client, &format!("{base}/Task?status=accepted&_count=100")).await
}

async fn ids_of(client: &reqwest::Client, url: &str) -> Result<Vec<String>, String> {
    let bundle = get_json(client, url).await?;
    let ids: Vec<String> = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/resource/id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(format!("GET {url}: no Tasks to read"));
    }
    Ok(ids)
}

/// VmHWM of this process in MB, from /proc/self/status (Linux).
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
