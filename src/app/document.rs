//! POST /fhir/Bundle: a referral delivered as a FHIR document (documents.html), the way
//! referral gateways in the style of ZorgDomein send it. The document is checked
//! (Composition first, `Bundle.identifier`, `Bundle.timestamp`, every reference of the
//! Composition resolvable inside the Bundle), stored as received, and its resources are
//! written as the equivalent transaction ([`transaction_of`]) in the same unit of work,
//! so the referral is validated, routed and audited exactly as a transaction's.
//! `Bundle.identifier` is the idempotency key: the same document again is answered with
//! the stored one (200), another document with that identifier is refused (409).
//! The mapping is documented in `profiles/README-document-intake.md`.

use serde_json::{json, Map, Value};

use crate::app::access::{require, Need};
use crate::app::bundle::Plan;
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::app::resources::{check_valid, WriteRequest};
use crate::app::workflow::Workflow;
use crate::app::write::run_write;
use crate::app::App;
use crate::fhir::index::index_rows;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::store::query::{Match, SystemMatch};
use crate::store::{Criterion, Failure};

/// Identifier systems by which repeated documents find the resources stored before
/// (conditional create) instead of storing them again.
const MATCHED_BY: &[(&str, &str)] = &[
    ("Patient", "http://fhir.nl/fhir/NamingSystem/bsn"),
    ("Organization", "http://fhir.nl/fhir/NamingSystem/agb-z"),
    ("Practitioner", "http://fhir.nl/fhir/NamingSystem/agb-z"),
];

/// Stores a document Bundle and writes the referral it carries, in one unit of work.
pub async fn post(
    app: &App,
    principal: &Principal,
    incoming: IncomingResource,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    crate::app::message::only_referrers(principal)?;
    require(principal, "Bundle", Need::Create)?;
    let key = check_document(&incoming.value)?;
    let tx_bundle = transaction_of(&incoming.value)?;
    let raw = serde_json::to_vec(&tx_bundle).map_err(|e| AppError::internal(&e))?;
    // A type the hub does not store is a 404 at a URL, but in a document it is content
    // the hub cannot take: 422.
    let plan = Plan::new(&tx_bundle, &raw, app.max_bundle_entries).map_err(|mut e| {
        if e.kind == ErrorKind::NotFound {
            e.kind = ErrorKind::Unprocessable;
        }
        shift(e)
    })?;
    plan.require(principal).map_err(shift)?;
    let def = registry::resource("Bundle").ok_or_else(|| AppError::internal(&"no Bundle"))?;
    let rows = index_rows(def, &incoming.value);
    let received = without_id_and_meta(&incoming.value);
    let wf = Workflow::new(app, principal);
    let (base, pref) = (req.base, req.pref);
    let id = crate::fhir::resource::new_logical_id();
    run_write(app, principal, req.idempotency, move |tx| {
        tx.lock(&format!("document:{}|{}", key.0, key.1))?;
        let criterion = Criterion::Any(vec![Match::Token {
            param: "identifier".to_owned(),
            system: SystemMatch::Exactly(key.0.clone()),
            code: Some(key.1.clone()),
        }]);
        if let Some(earlier) = tx.find_ids("Bundle", &[criterion])?.into_iter().next() {
            let Some(v) = tx.current("Bundle", &earlier)? else {
                return Err(Failure::Abort(reused()));
            };
            let stored: Option<Value> =
                v.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
            if stored.as_ref().map(without_id_and_meta) != Some(received.clone()) {
                return Err(Failure::Abort(reused()));
            }
            return Ok(reply::resource(status::OK, &v, &base, pref, true));
        }
        plan.run(tx, &base, ReturnPref::Minimal, Some(&wf))
            .map_err(|f| match f {
                Failure::Abort(e) => Failure::Abort(shift(e)),
                other => other,
            })?;
        let v = tx.create("Bundle", &id, &|v, at| incoming.render(&id, v, at), &rows)?;
        Ok(reply::resource(status::CREATED, &v, &base, pref, true))
    })
    .await
}

fn reused() -> AppError {
    AppError::one(
        ErrorKind::Conflict,
        Issue::error(
            IssueCode::Duplicate,
            "A different document with this Bundle.identifier was received before; a document identifier is never reused",
        )
        .at("Bundle.identifier"),
    )
}

pub(crate) fn without_id_and_meta(value: &Value) -> Value {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
    }
    v
}

fn invalid(code: IssueCode, at: String, diagnostics: impl Into<String>) -> AppError {
    AppError::invalid(vec![Issue::error(code, diagnostics).at(at)])
}

/// The checks of documents.html this server makes before anything else; returns the
/// identifier (system, value).
pub fn check_document(doc: &Value) -> Result<(String, String), AppError> {
    let kind = doc.get("type").and_then(Value::as_str);
    if kind != Some("document") {
        return Err(AppError::unprocessable(vec![Issue::error(
            IssueCode::NotSupported,
            format!(
                "POST /fhir/Bundle takes documents (Bundle.type document), not {}; transactions and batches are posted to /fhir",
                kind.unwrap_or("a Bundle without type")
            ),
        )
        .at("Bundle.type")]));
    }
    let text = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(system), Some(value)) = (text("/identifier/system"), text("/identifier/value"))
    else {
        return Err(invalid(
            IssueCode::Required,
            "Bundle.identifier".into(),
            "A document needs Bundle.identifier with system and value (its idempotency key)",
        ));
    };
    if text("/timestamp").is_none() {
        return Err(invalid(
            IssueCode::Required,
            "Bundle.timestamp".into(),
            "A document needs Bundle.timestamp",
        ));
    }
    let entries = doc.get("entry").and_then(Value::as_array);
    let entries = entries.map(Vec::as_slice).unwrap_or_default();
    let first_type = entries
        .first()
        .and_then(|e| e.pointer("/resource/resourceType"))
        .and_then(Value::as_str);
    if first_type != Some("Composition") {
        return Err(invalid(
            IssueCode::Structure,
            "Bundle.entry[0].resource".into(),
            "The first entry of a document must be its Composition",
        ));
    }
    let mut full_urls = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(url) = e.get("fullUrl").and_then(Value::as_str) else {
            return Err(invalid(
                IssueCode::Required,
                format!("Bundle.entry[{i}].fullUrl"),
                "Every entry of a document needs a fullUrl",
            ));
        };
        full_urls.push(url);
        if let Some(r) = e.get("resource") {
            let ty = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
            check_valid(ty, r).map_err(|e| at_entry(i, e))?;
        }
    }
    let composition = &entries[0]["resource"];
    let mut refs = Vec::new();
    collect_references(composition, "", &mut refs);
    for (path, r) in refs {
        if !full_urls.contains(&r.as_str()) {
            return Err(invalid(
                IssueCode::NotFound,
                format!("Bundle.entry[0].resource{path}"),
                format!("'{r}' names no entry of this document (references in a document resolve inside the Bundle)"),
            ));
        }
    }
    if !entries
        .iter()
        .any(|e| e.pointer("/resource/resourceType") == Some(&json!("ServiceRequest")))
    {
        return Err(AppError::unprocessable(vec![Issue::error(
            IssueCode::Required,
            "The document carries no ServiceRequest: a referral document needs one",
        )
        .at("Bundle.entry")]));
    }
    Ok((system.to_owned(), value.to_owned()))
}

/// The references the Composition makes: subject, author, encounter, custodian and
/// the entries of every section (nested too), with their paths.
fn collect_references(c: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let mut one = |path: String, v: &Value| {
        if let Some(r) = v.get("reference").and_then(Value::as_str) {
            out.push((format!("{path}.reference"), r.to_owned()));
        }
    };
    for name in ["subject", "encounter", "custodian", "focus"] {
        if let Some(v) = c.get(name) {
            one(format!("{prefix}.{name}"), v);
        }
    }
    for name in ["author", "entry"] {
        for (i, v) in c
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            one(format!("{prefix}.{name}[{i}]"), v);
        }
    }
    for (i, s) in c
        .get("section")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        collect_references(s, &format!("{prefix}.section[{i}]"), out);
    }
}

/// The transaction a document stands for: every entry after the Composition, POSTed
/// with its fullUrl; Patients, Organizations and Practitioners conditionally by BSN or
/// AGB, a ServiceRequest by its first identifier. Transaction entry `k` is document
/// entry `k + 1` ([`shift`] maps errors back).
pub fn transaction_of(doc: &Value) -> Result<Value, AppError> {
    let entries = doc
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate().skip(1) {
        let Some(resource) = e.get("resource").filter(|r| r.is_object()).cloned() else {
            return Err(invalid(
                IssueCode::Required,
                format!("Bundle.entry[{i}].resource"),
                "Every entry of a document carries a resource",
            ));
        };
        let ty = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut request = Map::new();
        request.insert("method".into(), json!("POST"));
        request.insert("url".into(), json!(ty));
        if let Some(q) = match_query(&ty, &resource) {
            request.insert("ifNoneExist".into(), json!(q));
        }
        out.push(json!({"fullUrl": e["fullUrl"], "resource": resource, "request": request}));
    }
    Ok(json!({"resourceType": "Bundle", "type": "transaction", "entry": out}))
}

/// `identifier=system|value` for a conditional create, escaped as a query.
fn match_query(ty: &str, resource: &Value) -> Option<String> {
    let ids = resource.get("identifier")?.as_array()?;
    let wanted = MATCHED_BY.iter().find(|(t, _)| *t == ty).map(|(_, s)| *s);
    let id = ids.iter().find(|id| match wanted {
        Some(system) => id.get("system").and_then(Value::as_str) == Some(system),
        None => ty == "ServiceRequest" && id.get("system").is_some(),
    })?;
    let token = format!("{}|{}", id["system"].as_str()?, id.get("value")?.as_str()?);
    Some(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("identifier", &token)
            .finish(),
    )
}

pub(crate) fn at_entry(i: usize, mut e: AppError) -> AppError {
    for issue in &mut e.issues {
        issue.expression = Some(match issue.expression.take() {
            Some(x) => {
                let rest = x.find(['.', '[']).map_or("", |p| &x[p..]);
                format!("Bundle.entry[{i}].resource{rest}")
            }
            None => format!("Bundle.entry[{i}].resource"),
        });
    }
    e
}

/// Maps `Bundle.entry[k]` of the transaction to `Bundle.entry[k + 1]` of the document.
pub(crate) fn shift(mut e: AppError) -> AppError {
    let fix = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(p) = rest.find("Bundle.entry[") {
            let (head, tail) = rest.split_at(p + "Bundle.entry[".len());
            out.push_str(head);
            let digits = tail.chars().take_while(char::is_ascii_digit).count();
            match tail[..digits].parse::<usize>() {
                Ok(k) => out.push_str(&(k + 1).to_string()),
                Err(_) => out.push_str(&tail[..digits]),
            }
            rest = &tail[digits..];
        }
        out.push_str(rest);
        out
    };
    for issue in &mut e.issues {
        issue.diagnostics = fix(&issue.diagnostics);
        issue.expression = issue.expression.as_deref().map(fix);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_indices_move_to_the_document() {
        let e = AppError::invalid(vec![Issue::error(IssueCode::Invalid, "Bundle.entry[3]: x")
            .at("Bundle.entry[3].resource.subject")]);
        let e = shift(e);
        assert_eq!(
            e.issues[0].expression.as_deref(),
            Some("Bundle.entry[4].resource.subject")
        );
        assert_eq!(e.issues[0].diagnostics, "Bundle.entry[4]: x");
    }

    #[test]
    fn conditional_creates_by_bsn_agb_and_referral_identifier() {
        let p = json!({"resourceType": "Patient", "identifier": [
            {"system": "x", "value": "1"},
            {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}]});
        assert_eq!(
            match_query("Patient", &p).as_deref(),
            Some("identifier=http%3A%2F%2Ffhir.nl%2Ffhir%2FNamingSystem%2Fbsn%7C999999011")
        );
        let o = json!({"identifier": [{"system": "other", "value": "1"}]});
        assert_eq!(match_query("Organization", &o), None);
        assert_eq!(match_query("Consent", &o), None);
        assert!(match_query("ServiceRequest", &o).is_some());
    }
}
