//! The CapabilityStatement, generated from the registry and from the interactions and
//! operations the router registers, so it states exactly what is implemented.

use serde_json::{json, Value};

use crate::fhir::patch::JSON_PATCH;
use crate::fhir::registry::RESOURCES;
use crate::fhir::FHIR_VERSION;

/// What the HTTP layer serves; see `api::SERVED`.
pub struct Served {
    pub type_interactions: &'static [&'static str],
    pub system_interactions: &'static [&'static str],
    /// (name, canonical definition) of operations on the server's base (`[base]/$name`).
    pub system_operations: &'static [(&'static str, &'static str)],
    /// (name, canonical definition) of operations on every type.
    pub type_operations: &'static [(&'static str, &'static str)],
    /// (type, name, canonical definition) of operations on one type.
    pub resource_operations: &'static [(&'static str, &'static str, &'static str)],
    /// (type, profile) the server checks resources of that type against.
    pub supported_profiles: &'static [(&'static str, &'static str)],
    /// (type, text) for `rest.resource.documentation`: rules the server applies to a type
    /// that no profile states.
    pub resource_documentation: &'static [(&'static str, &'static str)],
    pub update_create: bool,
    pub conditional_create: bool,
    /// `PUT [type]?criteria`.
    pub conditional_update: bool,
    /// `DELETE [type]?criteria`: `not-supported`, `single` or `multiple`.
    pub conditional_delete: &'static str,
    /// Types served read-only (read and search-type only), not as stored versions
    /// (the conformance resources, the audit trail).
    pub read_only: &'static [&'static [ReadOnlyType]],
    /// `messaging`: FHIR messages taken (`$process-message`) and sent.
    pub messaging: &'static [Messaging],
    /// `document`: (mode, profile, documentation) of the FHIR documents taken or produced.
    pub documents: &'static [(&'static str, &'static str, &'static str)],
}

/// One `messaging` entry of the CapabilityStatement.
pub struct Messaging {
    pub documentation: &'static str,
    /// (mode `sender` | `receiver`, MessageDefinition canonical).
    pub supported_messages: &'static [(&'static str, &'static str)],
}

/// `messaging` (R4 CapabilityStatement.messaging): endpoint is the `$process-message`
/// URL of this instance.
fn messaging(base_url: &str, m: &Messaging) -> Value {
    json!({
        "endpoint": [{
            "protocol": {
                "system": "http://terminology.hl7.org/CodeSystem/message-transport",
                "code": "http"
            },
            "address": format!("{base_url}/$process-message"),
        }],
        "documentation": m.documentation,
        "supportedMessage": m
            .supported_messages
            .iter()
            .map(|(mode, definition)| json!({ "mode": mode, "definition": definition }))
            .collect::<Vec<_>>(),
    })
}

/// A resource type served read-only from memory (the hub's conformance resources).
pub struct ReadOnlyType {
    pub name: &'static str,
    pub search_params: &'static [ReadOnlyParam],
    pub documentation: &'static str,
}

/// A search parameter of a read-only type.
pub struct ReadOnlyParam {
    pub name: &'static str,
    /// The search parameter type code (`token`, `uri`, `string`).
    pub ty: &'static str,
    pub definition: &'static str,
    pub documentation: &'static str,
}

fn read_only_resource(
    t: &ReadOnlyType,
    operations: &[(&'static str, &'static str, &'static str)],
) -> Value {
    let operation: Vec<Value> = operations
        .iter()
        .filter(|(ty, _, _)| *ty == t.name)
        .map(|(_, name, definition)| json!({"name": name, "definition": definition}))
        .collect();
    let mut r = json!({
        "type": t.name,
        "documentation": t.documentation,
        "interaction": [{ "code": "read" }, { "code": "search-type" }],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "conditionalCreate": false,
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": t
            .search_params
            .iter()
            .map(|p| json!({
                "name": p.name,
                "definition": p.definition,
                "type": p.ty,
                "documentation": p.documentation,
            }))
            .collect::<Vec<_>>(),
    });
    if !operation.is_empty() {
        r["operation"] = json!(operation);
    }
    r
}

/// `rest.documentation`: what every interaction takes beyond its own parameters.
const REST_DOCUMENTATION: &str = "Bodies are stored as sent; the server sets only id and \
meta.versionId/lastUpdated. JSON only: every request takes _format (json, \
application/json, application/fhir+json, application/json+fhir; anything else 406) and \
_pretty=true|false; Accept and Content-Type may carry fhirVersion=4.0 (another version: \
406 / 415). HEAD is answered on read, vread, search and metadata with the headers of GET \
(ETag, Last-Modified) and no body. read and vread take _summary=true|text|data|false and \
_elements; search takes those and _summary=count, _count (0: the total only), _sort, \
_include, _revinclude and _total; history takes _count, _since and _at. A subset carries \
the meta.tag SUBSETTED and always the mandatory elements. Empty arrays, empty objects, \
null (outside the _x primitive-extension arrays), empty strings and strings holding U+0000 \
are refused with 400.";

/// What each interaction takes beyond http.html's basics.
fn interaction(code: &str) -> Value {
    let documentation = match code {
        "read" | "vread" => {
            "Also HEAD. _summary=true|text|data|false or _elements (not both); _summary=count: 400."
        }
        "search-type" => {
            "Also HEAD. _summary=true|text|data|count|false or _elements (not both), _count \
             (0: the total only), _sort, _include, _revinclude, _total."
        }
        "history-instance" | "history-type" | "history-system" => {
            "_count, _since, and _at=<date> (versions current at some moment of that \
             period; ge/gt/le/lt open it on one side)."
        }
        "patch" => PATCH_DOCUMENTATION,
        _ => return json!({ "code": code }),
    };
    json!({ "code": code, "documentation": documentation })
}

/// JSON FHIR has no empty arrays: lists a type has nothing for are left out.
fn drop_empty_lists(resource: &mut Value) {
    if let Some(object) = resource.as_object_mut() {
        object.retain(|_, v| !v.as_array().is_some_and(Vec::is_empty));
    }
}

pub fn capability_statement(base_url: &str, served: &Served, published: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|def| {
            let mut r = json!({
                "type": def.name,
                "interaction": served
                    .type_interactions
                    .iter()
                    .map(|code| interaction(code))
                    .collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": served.update_create,
                "conditionalCreate": served.conditional_create,
                "conditionalRead": "not-supported",
                "conditionalUpdate": served.conditional_update,
                "conditionalDelete": served.conditional_delete,
                "operation": served
                    .type_operations
                    .iter()
                    .map(|(name, definition)| (*name, *definition))
                    .chain(
                        served
                            .resource_operations
                            .iter()
                            .filter(|(ty, _, _)| *ty == def.name)
                            .map(|(_, name, definition)| (*name, *definition)),
                    )
                    .map(|(name, definition)| json!({ "name": name, "definition": definition }))
                    .collect::<Vec<_>>(),
            });
            if def.name == "Bundle" {
                // Documents are stored as received and never changed (README "Document intake").
                r["interaction"] = [
                    "read",
                    "vread",
                    "create",
                    "search-type",
                    "history-instance",
                    "history-type",
                ]
                .iter()
                .filter(|code| served.type_interactions.contains(code))
                .map(|code| interaction(code))
                .collect();
                r["updateCreate"] = json!(false);
                r["conditionalCreate"] = json!(false);
                r["conditionalUpdate"] = json!(false);
                r["conditionalDelete"] = json!("not-supported");
                r["operation"] = json!([]);
            }
            let profiles: Vec<&str> = served
                .supported_profiles
                .iter()
                .filter(|(ty, _)| *ty == def.name)
                .map(|(_, url)| *url)
                .collect();
            if !profiles.is_empty() {
                r["supportedProfile"] = json!(profiles);
            }
            let documentation: Vec<&str> = served
                .resource_documentation
                .iter()
                .filter(|(ty, _)| *ty == def.name)
                .map(|(_, text)| *text)
                .collect();
            if !documentation.is_empty() {
                r["documentation"] = json!(documentation.join("\n\n"));
            }
            if def.name == "Subscription" {
                // Subscriptions Backport IG: the topics a Subscription may name.
                r["extension"] = json!(crate::notify::subscription_topic_extensions());
            }
            if served.type_interactions.contains(&"search-type") || served.conditional_create {
                r["searchParam"] = def
                    .search_params
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "definition": p.definition,
                            "type": p.ty.as_str(),
                            "documentation": p.documentation,
                        })
                    })
                    .collect();
                r["searchInclude"] = json!(def.includes());
                r["searchRevInclude"] = json!(def.revincludes());
            }
            drop_empty_lists(&mut r);
            r
        })
        .chain(
            served
                .read_only
                .iter()
                .flat_map(|t| t.iter())
                .map(|t| read_only_resource(t, served.resource_operations)),
        )
        .collect();
    let mut statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "wor-hub",
        "kind": "instance",
        "software": { "name": "wor-hub", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "wor-hub: Welzijn op Recept referral hub",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": REST_DOCUMENTATION,
            "security": security(base_url),
            "resource": resources,
            "interaction": served
                .system_interactions
                .iter()
                .map(|code| interaction(code))
                .collect::<Vec<_>>(),
            "operation": served
                .system_operations
                .iter()
                .map(|(name, definition)| json!({ "name": name, "definition": definition }))
                .collect::<Vec<_>>(),
        }],
        "messaging": served
            .messaging
            .iter()
            .map(|m| messaging(base_url, m))
            .collect::<Vec<_>>(),
        "document": served
            .documents
            .iter()
            .map(|(mode, profile, documentation)| json!({
                "mode": mode,
                "documentation": documentation,
                "profile": profile,
            }))
            .collect::<Vec<_>>(),
    });
    drop_empty_lists(&mut statement["rest"][0]);
    drop_empty_lists(&mut statement);
    if served.type_interactions.contains(&"patch") {
        statement["patchFormat"] = json!([JSON_PATCH, "application/fhir+json"]);
    }
    statement
}

/// `rest.security`: SMART Backend Services (always declared: clients may be registered
/// at any time; while none is, the server runs open on loopback only).
fn security(base_url: &str) -> Value {
    json!({
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }],
            "text": "SMART Backend Services (OAuth 2.0 client credentials)"
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": crate::auth::token_url(base_url)}]
        }],
        "description": "Once a client is registered, every request except metadata needs \
            Authorization: Bearer with an access token from the token endpoint (client \
            credentials; private_key_jwt RS384/ES384 or client_secret_basic; SMART v2 system \
            scopes). See /.well-known/smart-configuration."
    })
}

/// What PATCH accepts (http.html#patch), for the `patch` interaction's documentation.
const PATCH_DOCUMENTATION: &str = "JSON Patch (RFC 6902, application/json-patch+json) or FHIRPath Patch \
     (a Parameters resource, application/fhir+json). The patched resource is checked and stored as a PUT \
     of it would be (validation, references, If-Match, for Task the workflow rules). A failing JSON Patch \
     test, or a path that selects nothing to replace: 422. FHIRPath Patch paths: element names from the \
     resource type, [n], first(), last(), extension('url') and where() with `element = literal` \
     comparisons joined by `and`; other expressions: 400. Transaction and batch entries: PATCH with a \
     Binary (JSON Patch, base64 data) or a Parameters resource.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_is_valid_r4_with_messaging_and_documents() {
        let cs = capability_statement(
            "https://hub.example/fhir",
            &crate::api::SERVED,
            "2026-12-03",
        );
        let issues = crate::fhir::validate::schema_errors("CapabilityStatement", &cs);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(cs["rest"][0]["operation"][0]["name"], "process-message");
        assert_eq!(
            cs["messaging"][0]["endpoint"][0]["address"],
            "https://hub.example/fhir/$process-message"
        );
        assert_eq!(
            cs["messaging"][0]["supportedMessage"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        // R4: document.profile is 1..1.
        assert_eq!(
            cs["document"][0]["profile"],
            "http://hl7.org/fhir/StructureDefinition/Bundle"
        );
    }

    #[test]
    fn empty_lists_are_left_out() {
        let served = Served {
            type_interactions: &["read"],
            system_interactions: &[],
            system_operations: &[],
            type_operations: &[],
            resource_operations: &[],
            supported_profiles: &[],
            resource_documentation: &[],
            update_create: false,
            conditional_create: false,
            conditional_update: false,
            conditional_delete: "not-supported",
            read_only: &[],
            messaging: &[],
            documents: &[],
        };
        let cs = capability_statement("https://hub.example/fhir", &served, "2026-12-03");
        for key in ["messaging", "document"] {
            assert!(cs.get(key).is_none(), "{key}");
        }
        for key in ["operation", "interaction"] {
            assert!(cs["rest"][0].get(key).is_none(), "{key}");
        }
    }
}
