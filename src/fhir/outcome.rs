//! OperationOutcome issues: the vocabulary every layer uses to describe a problem.
//!
//! Only `crate::error` turns issues into an HTTP response; everything else produces
//! [`Issue`] values.

use serde_json::{json, Map, Value};

/// http://hl7.org/fhir/R4/valueset-issue-severity.html
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// The subset of http://hl7.org/fhir/R4/valueset-issue-type.html this server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    CodeInvalid,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    NotFound,
    Deleted,
    TooLong,
    Conflict,
    Exception,
    Transient,
    Throttled,
    TooCostly,
    Informational,
    BusinessRule,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::CodeInvalid => "code-invalid",
            Self::Invariant => "invariant",
            Self::Security => "security",
            Self::Login => "login",
            Self::Forbidden => "forbidden",
            Self::Processing => "processing",
            Self::NotSupported => "not-supported",
            Self::Duplicate => "duplicate",
            Self::NotFound => "not-found",
            Self::Deleted => "deleted",
            Self::TooLong => "too-long",
            Self::Conflict => "conflict",
            Self::Exception => "exception",
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::TooCostly => "too-costly",
            Self::Informational => "informational",
            Self::BusinessRule => "business-rule",
        }
    }
}

/// One OperationOutcome.issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub diagnostics: String,
    /// FHIRPath of the element concerned, e.g. `Patient.name[0].family`.
    pub expression: Option<String>,
    /// `issue.details`: one coding and its text.
    pub details: Option<Details>,
}

/// `OperationOutcome.issue.details` as this server fills it: one coding and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub system: &'static str,
    pub code: &'static str,
    pub text: &'static str,
}

impl Issue {
    pub fn error(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            details: None,
        }
    }

    pub fn warning(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            details: None,
        }
    }

    pub fn information(diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Information,
            code: IssueCode::Informational,
            diagnostics: diagnostics.into(),
            expression: None,
            details: None,
        }
    }

    #[must_use]
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    #[must_use]
    pub fn with_details(mut self, details: Details) -> Self {
        self.details = Some(details);
        self
    }

    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error | Severity::Fatal)
    }

    fn to_json(&self) -> Value {
        let mut issue = Map::new();
        issue.insert("severity".into(), json!(self.severity.as_str()));
        issue.insert("code".into(), json!(self.code.as_str()));
        issue.insert("diagnostics".into(), json!(self.diagnostics));
        if let Some(d) = &self.details {
            issue.insert(
                "details".into(),
                json!({"coding": [{"system": d.system, "code": d.code}], "text": d.text}),
            );
        }
        if let Some(expr) = &self.expression {
            issue.insert("expression".into(), json!([expr]));
        }
        Value::Object(issue)
    }
}

/// Builds an OperationOutcome resource from issues. An empty list yields the
/// "all ok" information issue the spec asks for (`$validate` on a valid resource).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = if issues.is_empty() {
        vec![Issue::information("No issues detected").to_json()]
    } else {
        issues.iter().map(Issue::to_json).collect()
    };
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}
