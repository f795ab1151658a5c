use serde_json::{json, Value};

use super::*;

fn task() -> Value {
    json!({
        "resourceType": "Task",
        "id": "t1",
        "extension": [{"url": "https://wor-hub.nl/fhir/StructureDefinition/routing-decision", "valueString": "x"}],
        "status": "requested",
        "intent": "order",
        "statusReason": {"text": "waiting"},
        "note": [{"text": "one"}, {"text": "two"}],
        "output": [{"type": {"text": "feedback"}, "valueString": "ok"}]
    })
}

fn operation(parts: Value) -> Value {
    json!({"name": "operation", "part": parts})
}

fn fhirpath(ops: Vec<Value>) -> PatchDoc {
    let params = json!({"resourceType": "Parameters", "parameter": ops});
    PatchDoc::parse(Format::FhirPath, params.to_string().as_bytes(), "Task").unwrap()
}

fn patched(ops: Vec<Value>) -> Result<Value, PatchError> {
    let mut doc = task();
    fhirpath(ops).apply("Task", &mut doc).map(|()| doc)
}

fn typed(kind: &str, path: &str) -> Vec<Value> {
    vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ]
}

fn with(mut parts: Vec<Value>, more: &[Value]) -> Value {
    parts.extend_from_slice(more);
    operation(json!(parts))
}

#[test]
fn replace_add_insert_delete_move() {
    let doc = patched(vec![
        with(
            typed("replace", "Task.status"),
            &[json!({"name": "value", "valueCode": "received"})],
        ),
        with(
            typed("add", "Task"),
            &[
                json!({"name": "name", "valueString": "businessStatus"}),
                json!({"name": "value", "valueCodeableConcept": {"text": "contact"}}),
            ],
        ),
        with(
            typed("add", "Task"),
            &[
                json!({"name": "name", "valueString": "output"}),
                json!({"name": "value", "part": [
                    {"name": "type", "valueCodeableConcept": {"text": "intake"}},
                    {"name": "value", "valueReference": {"reference": "QuestionnaireResponse/q"}}
                ]}),
            ],
        ),
        with(
            typed("insert", "Task.note"),
            &[
                json!({"name": "value", "valueAnnotation": {"text": "zero"}}),
                json!({"name": "index", "valueInteger": 0}),
            ],
        ),
        with(
            typed("move", "Task.note"),
            &[
                json!({"name": "source", "valueInteger": 2}),
                json!({"name": "destination", "valueInteger": 0}),
            ],
        ),
        operation(json!(typed("delete", "Task.statusReason.text"))),
        operation(json!(typed("delete", "Task.nothing.here"))),
    ])
    .unwrap();
    assert_eq!(doc["status"], "received");
    assert_eq!(doc["businessStatus"]["text"], "contact");
    assert_eq!(
        doc["output"][1]["valueReference"]["reference"],
        "QuestionnaireResponse/q"
    );
    assert_eq!(doc["output"][1]["type"]["text"], "intake");
    let notes: Vec<&str> = doc["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["two", "zero", "one"]);
    // Deleting the only member left no empty statusReason behind.
    assert!(doc.get("statusReason").is_none(), "{doc}");
    assert_eq!(doc["extension"], task()["extension"]);
}

#[test]
fn where_and_choice_types() {
    let doc = patched(vec![with(
        typed("replace", "Task.output.where(type.text = 'feedback').value"),
        &[json!({"name": "value", "valueString": "changed"})],
    )])
    .unwrap();
    assert_eq!(doc["output"][0]["valueString"], "changed");
    let doc = patched(vec![with(
        typed("replace", "Task.output[0].value"),
        &[json!({"name": "value", "valueBoolean": true})],
    )])
    .unwrap();
    assert_eq!(
        doc["output"][0],
        json!({"type": {"text": "feedback"}, "valueBoolean": true})
    );
    let doc = patched(vec![operation(json!(typed(
        "delete",
        "Task.note.where(text='one')"
    )))])
    .unwrap();
    assert_eq!(doc["note"], json!([{"text": "two"}]));
}

fn refused(ops: Vec<Value>) -> (bool, Issue) {
    match patched(ops) {
        Ok(doc) => panic!("applied: {doc}"),
        Err(PatchError::Invalid(i)) => (false, i),
        Err(PatchError::Unprocessable(i)) => (true, i),
    }
}

#[test]
fn failures_name_the_part() {
    let (state, issue) = refused(vec![with(
        typed("replace", "Task.businessStatus"),
        &[json!({"name": "value", "valueCodeableConcept": {"text": "x"}})],
    )]);
    assert!(state);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Parameters.parameter[0].part[1]")
    );
    let (state, issue) = refused(vec![with(
        typed("add", "Task"),
        &[
            json!({"name": "name", "valueString": "status"}),
            json!({"name": "value", "valueCode": "x"}),
        ],
    )]);
    assert!(
        state && issue.diagnostics.contains("use replace"),
        "{issue:?}"
    );
    let (state, issue) = refused(vec![with(
        typed("add", "Task"),
        &[
            json!({"name": "name", "valueString": "colour"}),
            json!({"name": "value", "valueCode": "x"}),
        ],
    )]);
    assert!(
        !state && issue.diagnostics.contains("no element 'colour'"),
        "{issue:?}"
    );
    assert_eq!(
        issue.expression.as_deref(),
        Some("Parameters.parameter[0].part[2]")
    );
    let (state, issue) = refused(vec![with(
        typed("insert", "Task.note"),
        &[
            json!({"name": "value", "valueAnnotation": {"text": "x"}}),
            json!({"name": "index", "valueInteger": 5}),
        ],
    )]);
    assert!(state);
    assert_eq!(
        issue.expression.as_deref(),
        Some("Parameters.parameter[0].part[3]")
    );
    let (state, _) = refused(vec![operation(json!(typed("delete", "Task.note")))]);
    assert!(state, "two notes: delete needs one");
    let (state, issue) = refused(vec![with(
        typed("insert", "Task.status"),
        &[
            json!({"name": "value", "valueCode": "x"}),
            json!({"name": "index", "valueInteger": 0}),
        ],
    )]);
    assert!(
        !state && issue.diagnostics.contains("does not repeat"),
        "{issue:?}"
    );
}

#[test]
fn malformed_fhirpath_patches_are_invalid() {
    for (ops, expression) in [
        (
            vec![operation(json!(typed("frobnicate", "Task.status")))],
            "Parameters.parameter[0].part[0]",
        ),
        (
            vec![operation(json!(typed(
                "delete",
                "Task.focus.resolve().status"
            )))],
            "Parameters.parameter[0].part[1]",
        ),
        (
            vec![operation(json!(typed("replace", "Task.status")))],
            "Parameters.parameter[0].part",
        ),
        (
            vec![json!({"name": "op", "part": [{"name": "type", "valueCode": "delete"}]})],
            "Parameters.parameter[0].name",
        ),
        (
            vec![with(
                typed("delete", "Task.status"),
                &[json!({"name": "value", "valueCode": "x"})],
            )],
            "Parameters.parameter[0].part[2]",
        ),
    ] {
        let params = json!({"resourceType": "Parameters", "parameter": ops});
        let issues =
            PatchDoc::parse(Format::FhirPath, params.to_string().as_bytes(), "Task").unwrap_err();
        assert_eq!(
            issues[0].expression.as_deref(),
            Some(expression),
            "{issues:?}"
        );
    }
    let issues = PatchDoc::parse(Format::FhirPath, b"[]", "Task").unwrap_err();
    assert!(!issues.is_empty());
}

#[test]
fn json_patch_parse_apply_and_errors() {
    let body = br#"[{"op":"test","path":"/status","value":"requested"},{"op":"replace","path":"/status","value":"received"},{"op":"add","path":"/note/-","value":{"text":"three"}}]"#;
    let patch = PatchDoc::parse(Format::JsonPatch, body, "Task").unwrap();
    let mut doc = task();
    patch.apply("Task", &mut doc).unwrap();
    assert_eq!(doc["status"], "received");
    assert_eq!(doc["note"][2]["text"], "three");

    let failing = PatchDoc::parse(
        Format::JsonPatch,
        br#"[{"op":"replace","path":"/status","value":"received"},{"op":"test","path":"/intent","value":"plan"}]"#,
        "Task",
    )
    .unwrap();
    let mut doc = task();
    let Err(PatchError::Unprocessable(issue)) = failing.apply("Task", &mut doc) else {
        panic!("test op must fail");
    };
    assert_eq!(issue.expression.as_deref(), Some("Task.intent"));
    assert_eq!(doc, task(), "a failed patch leaves nothing applied");

    let issues = PatchDoc::parse(
        Format::JsonPatch,
        br#"[{"op":"frob","path":"/note/0/text"}]"#,
        "Task",
    )
    .unwrap_err();
    assert_eq!(issues[0].expression.as_deref(), Some("Task.note[0].text"));
    assert!(PatchDoc::parse(Format::JsonPatch, br#"{"op":"add"}"#, "Task").is_err());
    assert!(PatchDoc::parse(
        Format::JsonPatch,
        br#"[{"op":"add","path":"status","value":1}]"#,
        "Task"
    )
    .is_err());
}

#[test]
fn bundle_entry_resources() {
    let data =
        base64::engine::general_purpose::STANDARD.encode(br#"[{"op":"remove","path":"/note/0"}]"#);
    let binary = json!({"resourceType": "Binary", "contentType": JSON_PATCH, "data": data});
    let mut doc = task();
    PatchDoc::from_entry(&binary, "Task")
        .unwrap()
        .apply("Task", &mut doc)
        .unwrap();
    assert_eq!(doc["note"], json!([{"text": "two"}]));
    let wrong = json!({"resourceType": "Binary", "contentType": "text/plain", "data": data});
    let issues = PatchDoc::from_entry(&wrong, "Task").unwrap_err();
    assert_eq!(issues[0].expression.as_deref(), Some("Binary.contentType"));
    assert!(PatchDoc::from_entry(&json!({"resourceType": "Task"}), "Task").is_err());
}

#[test]
fn pointers_become_fhirpaths() {
    assert_eq!(fhirpath_of("Task", ""), "Task");
    assert_eq!(fhirpath_of("Task", "/note/0/text"), "Task.note[0].text");
    assert_eq!(fhirpath_of("Task", "/note/-"), "Task.note");
    assert_eq!(fhirpath_of("Task", "/a~1b"), "Task.a/b");
}
