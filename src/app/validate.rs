//! `$validate` (http://hl7.org/fhir/R4/resource-operation-validate.html): would this
//! create, update or delete be accepted? The write's own unit of work runs (the same
//! validation, reference, business and workflow rules, routing of a referral) and is
//! rolled back, so `$validate` and the write cannot disagree. The answer is 200 with
//! an OperationOutcome whether or not the resource is valid, as the spec says; a 4xx
//! means the validation itself could not be done (a malformed request).
//!
//! Each validation leaves one audit record (action `E`, interaction `validate`): a dry
//! run reads stored resources (the Task being changed, referenced resources) as a read
//! does, and reads are audited. Validating the stored resource is a read (audited so).

use std::convert::Infallible;

use serde_json::Value;

use crate::app::access::Need;
use crate::app::conditional::Target;
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::{status, Reply, ReturnPref};
use crate::app::resources::{business_rules, create_unit, delete_unit, update_unit};
use crate::app::workflow::Workflow;
use crate::app::write::check_references;
use crate::app::App;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::references::local_references;
use crate::fhir::registry::ResourceDef;
use crate::fhir::resource::IncomingResource;
use crate::fhir::validate::validate_resource;
use crate::referral::codes::PROFILE_HEALTHCARE_SERVICE;
use crate::store::{AuditRecord, Failure, Lookup, Tx, TxError, WriteError};

/// `mode` (http://hl7.org/fhir/R4/valueset-resource-validation-mode.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
    Delete,
    Profile,
}

impl Mode {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "profile" => Self::Profile,
            _ => return None,
        })
    }
}

/// The operation's input parameters, from the URL and from a `Parameters` body.
#[derive(Debug, Default)]
pub struct Params {
    /// The resource to validate, as JSON text.
    pub resource: Option<Vec<u8>>,
    pub mode: Option<Mode>,
    pub profile: Option<String>,
}

fn bad(code: IssueCode, at: String, diagnostics: String) -> AppError {
    AppError::invalid(vec![Issue::error(code, diagnostics).at(at)])
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Params {
    /// Parameters from the URL (`mode`, `profile`; `_format` and `_pretty` are the
    /// server's) and the body: the resource itself, or a `Parameters` resource with
    /// `resource`, `mode` and `profile`. A parameter given twice: 400.
    pub fn parse(
        query: &[(String, String)],
        body: Option<(&Value, &[u8])>,
    ) -> Result<Self, AppError> {
        let mut params = Self::default();
        for (name, value) in query {
            match name.as_str() {
                "_format" | "_pretty" => {}
                "mode" => params.set_mode(value, name.clone())?,
                "profile" => params.set_profile(value, name.clone())?,
                other => {
                    return Err(bad(
                        IssueCode::NotSupported,
                        short(other),
                        format!(
                            "Unsupported $validate parameter '{}' (mode, profile; the resource goes in the body)",
                            short(other)
                        ),
                    ))
                }
            }
        }
        let Some((value, raw)) = body else {
            return Ok(params);
        };
        if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            params.resource = Some(raw.to_vec());
            return Ok(params);
        }
        let entries = value
            .get("parameter")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, p) in entries.iter().enumerate() {
            let at = |element: &str| format!("Parameters.parameter[{i}].{element}");
            match p.get("name").and_then(Value::as_str) {
                Some("resource") => {
                    let resource =
                        p.get("resource").filter(|r| r.is_object()).ok_or_else(|| {
                            bad(
                                IssueCode::Required,
                                at("resource"),
                                "Parameter 'resource' carries the resource in 'resource'".into(),
                            )
                        })?;
                    if params.resource.is_some() {
                        return Err(twice("resource", at("name")));
                    }
                    let text = serde_json::to_vec(resource).map_err(|e| AppError::internal(&e))?;
                    params.resource = Some(text);
                }
                Some("mode") => {
                    let code = p
                        .get("valueCode")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    params.set_mode(code, at("valueCode"))?;
                }
                Some("profile") => {
                    let uri = p
                        .get("valueUri")
                        .or_else(|| p.get("valueCanonical"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    params.set_profile(uri, at("valueUri"))?;
                }
                other => {
                    return Err(bad(
                        IssueCode::NotSupported,
                        at("name"),
                        format!(
                            "Unsupported $validate parameter '{}' (resource, mode, profile)",
                            short(other.unwrap_or_default())
                        ),
                    ))
                }
            }
        }
        Ok(params)
    }

    fn set_mode(&mut self, code: &str, at: String) -> Result<(), AppError> {
        if self.mode.is_some() {
            return Err(twice("mode", at));
        }
        self.mode = Some(Mode::parse(code).ok_or_else(|| {
            bad(
                IssueCode::Value,
                at,
                format!(
                    "mode must be create, update, delete or profile, not '{}'",
                    short(code)
                ),
            )
        })?);
        Ok(())
    }

    fn set_profile(&mut self, uri: &str, at: String) -> Result<(), AppError> {
        if self.profile.is_some() {
            return Err(twice("profile", at));
        }
        if uri.is_empty() {
            return Err(bad(
                IssueCode::Required,
                at,
                "profile needs a canonical URL".into(),
            ));
        }
        self.profile = Some(uri.to_owned());
        Ok(())
    }
}

fn twice(name: &str, at: String) -> AppError {
    bad(
        IssueCode::Duplicate,
        at,
        format!("$validate parameter '{name}' is given more than once"),
    )
}

/// The profiles resources of `def` are checked against on every write: the R4 base
/// definition, and the project's profile of a directory entry.
fn known_profiles(def: &ResourceDef) -> Vec<String> {
    let mut known = vec![format!(
        "http://hl7.org/fhir/StructureDefinition/{}",
        def.name
    )];
    if def.name == "HealthcareService" {
        known.push(PROFILE_HEALTHCARE_SERVICE.to_owned());
    }
    known
}

fn check_profile(def: &ResourceDef, profile: Option<&str>) -> Result<(), AppError> {
    let Some(profile) = profile else {
        return Ok(());
    };
    let url = profile.split('|').next().unwrap_or_default();
    let known = known_profiles(def);
    if known.iter().any(|k| k == url) {
        return Ok(());
    }
    Err(bad(
        IssueCode::NotSupported,
        "profile".into(),
        format!(
            "This server cannot validate {} against '{}'; it validates against {}",
            def.name,
            short(profile),
            known.join(", ")
        ),
    ))
}

/// What the validation does.
enum Action {
    /// A create of the resource, rolled back.
    Create(Vec<u8>),
    /// An update of `id` with the resource, rolled back.
    Update(String, Vec<u8>),
    /// A delete of `id`, rolled back.
    Delete(String),
    /// The stored resource `id` as it is.
    Stored(String),
    /// The request cannot be a write at all (an update without id): these issues.
    Issues(Vec<Issue>),
}

fn mode_refused(mode: &str, at: &str, why: &str) -> AppError {
    bad(
        IssueCode::NotSupported,
        at.to_owned(),
        format!("mode={mode}: {why}"),
    )
}

fn required_resource(mode: &str) -> AppError {
    bad(
        IssueCode::Required,
        "resource".into(),
        format!("mode={mode} validates a resource: send it as the body or as parameter 'resource'"),
    )
}

/// Type level: `create` (the default) or `update` of the resource in the body.
/// Instance level: `update` (the default with a resource) of `id`, `delete` of `id`,
/// or (without a resource, or with `mode=profile`) the stored resource as it is.
fn action(def: &ResourceDef, id: Option<String>, params: Params) -> Result<Action, AppError> {
    if params.mode == Some(Mode::Profile) && params.profile.is_none() {
        return Err(bad(
            IssueCode::Required,
            "profile".into(),
            "mode=profile needs the profile to check against".into(),
        ));
    }
    let Some(id) = id else {
        return match (params.mode, params.resource) {
            (Some(Mode::Delete | Mode::Profile), _) => Err(mode_refused(
                if params.mode == Some(Mode::Delete) {
                    "delete"
                } else {
                    "profile"
                },
                "mode",
                &format!(
                    "it checks a stored resource: POST {}/[id]/$validate",
                    def.name
                ),
            )),
            (_, None) => Err(required_resource("create")),
            (None | Some(Mode::Create), Some(r)) => Ok(Action::Create(r)),
            (Some(Mode::Update), Some(r)) => {
                let body_id = serde_json::from_slice::<Value>(&r)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
                Ok(match body_id {
                    Some(id) => Action::Update(id, r),
                    None => Action::Issues(vec![Issue::error(
                        IssueCode::Required,
                        "An update must carry the resource id in the body",
                    )
                    .at(format!("{}.id", def.name))]),
                })
            }
        };
    };
    match (params.mode, params.resource) {
        (None | Some(Mode::Update), Some(r)) => Ok(Action::Update(id, r)),
        (Some(Mode::Create), _) => Err(mode_refused(
            "create",
            "mode",
            &format!("a new resource has no id yet: POST {}/$validate", def.name),
        )),
        (Some(Mode::Delete), Some(_)) => Err(mode_refused(
            "delete",
            "resource",
            "it checks whether the stored resource may be deleted: send no resource",
        )),
        (Some(Mode::Delete), None) => Ok(Action::Delete(id)),
        (Some(Mode::Profile), Some(_)) => Err(mode_refused(
            "profile",
            "resource",
            "it checks the stored resource: send no resource",
        )),
        (None | Some(Mode::Profile), None) => Ok(Action::Stored(id)),
        (Some(Mode::Update), None) => Err(required_resource("update")),
    }
}

/// Runs `$validate` on type `def` (instance `id`, if given). `if_match` is the
/// request's `If-Match`: without it an update is checked against the current version
/// (version conflicts are transactional integrity, which the spec leaves out).
pub async fn validate(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: Option<String>,
    params: Params,
    if_match: Option<i64>,
    base: String,
) -> Result<Reply, AppError> {
    check_profile(def, params.profile.as_deref())?;
    let need = match params.mode {
        Some(Mode::Create) => Need::Create,
        Some(Mode::Update) => Need::Update,
        Some(Mode::Delete) => Need::Delete,
        Some(Mode::Profile) | None => Need::Read,
    };
    crate::app::access::require(principal, def.name, need)?;
    let audited_id = id.clone();
    let (issues, what) = match action(def, id, params)? {
        Action::Issues(issues) => (issues, String::new()),
        Action::Stored(id) => {
            let what = format!("{}/{id} as stored", def.name);
            (stored(app, principal, def, id, base).await?, what)
        }
        action => {
            let what = match &action {
                Action::Create(_) => format!("A create of this {}", def.name),
                Action::Update(id, _) => format!("This update of {}/{id}", def.name),
                Action::Delete(id) => format!("Deleting {}/{id}", def.name),
                _ => String::new(),
            };
            let issues = dry_run(app, principal, def, action, if_match, base).await?;
            audit(app, principal, def, audited_id.as_deref(), &issues).await?;
            (
                issues,
                format!("{what} would be accepted; nothing was stored"),
            )
        }
    };
    let issues = if issues.iter().any(Issue::is_error) || what.is_empty() {
        issues
    } else {
        let mut all = vec![Issue::information(format!("Valid: {what}"))];
        all.extend(issues);
        all
    };
    Ok(Reply::new(status::OK).fhir(operation_outcome(&issues).to_string()))
}

/// How a dry run ended: the write would succeed, or these issues refuse it.
enum Dry {
    Accepted,
    Refused(AppError),
}

/// Runs the write's unit of work and rolls it back. The issues that would refuse it
/// (none: it would be accepted).
async fn dry_run(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    action: Action,
    if_match: Option<i64>,
    base: String,
) -> Result<Vec<Issue>, AppError> {
    let workflow = Workflow::new(app, principal);
    let who = principal.clone();
    let result = app
        .store
        .transaction(
            principal.access(),
            move |tx| -> Result<Infallible, Failure<Dry>> {
                match write(tx, &who, &workflow, def, &action, if_match, &base) {
                    Ok(()) => Err(Failure::Abort(Dry::Accepted)),
                    Err(Failure::Abort(e)) => Err(Failure::Abort(Dry::Refused(e))),
                    Err(Failure::Tx(e)) => Err(Failure::Tx(e)),
                }
            },
        )
        .await;
    match result {
        Ok(never) => match never {},
        Err(WriteError::Abort(Dry::Accepted)) => Ok(Vec::new()),
        // A fault of the server is not a verdict on the resource.
        Err(WriteError::Abort(Dry::Refused(e))) if e.kind == ErrorKind::Internal => Err(e),
        Err(WriteError::Abort(Dry::Refused(e))) => Ok(e.issues),
        Err(WriteError::Store(e)) => Err(e.into()),
    }
}

fn write(
    tx: &mut Tx<'_>,
    principal: &Principal,
    workflow: &Workflow,
    def: &'static ResourceDef,
    action: &Action,
    if_match: Option<i64>,
    base: &str,
) -> Result<(), Failure<AppError>> {
    let parse = |bytes: &[u8]| {
        IncomingResource::parse(bytes)
            .map_err(|issue| Failure::Abort(AppError::invalid(vec![issue])))
    };
    let pref = ReturnPref::Minimal;
    match action {
        Action::Create(bytes) => {
            let unit = create_unit(
                def,
                parse(bytes)?,
                None,
                base.to_owned(),
                pref,
                workflow.clone(),
            )
            .map_err(Failure::Abort)?;
            unit(tx)?;
        }
        Action::Update(id, bytes) => {
            let if_match = match if_match {
                Some(v) => Some(v),
                None => tx.current(def.name, id)?.map(|v| v.version_id),
            };
            let target = Target::Id(id.clone());
            let unit = update_unit(
                def,
                target,
                parse(bytes)?,
                if_match,
                base.to_owned(),
                pref,
                workflow.clone(),
            )
            .map_err(Failure::Abort)?;
            unit(tx)?;
        }
        Action::Delete(id) => {
            let target = Target::Id(id.clone());
            let unit =
                delete_unit(principal, def, target, if_match, pref).map_err(Failure::Abort)?;
            unit(tx)?;
        }
        Action::Stored(_) | Action::Issues(_) => {}
    }
    Ok(())
}

/// The stored resource checked as a write would check it: structure, business rules,
/// references. Its read is audited like any read; unknown: 404, deleted: 410.
async fn stored(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: String,
    base: String,
) -> Result<Vec<Issue>, AppError> {
    let ty = def.name;
    let rid = id.clone();
    let found = app
        .store
        .read(principal.access(), move |tx| {
            let body = match tx.read(ty, &rid, None)? {
                Lookup::Found(v) => v.body,
                Lookup::Deleted(_) => return Ok(Err(true)),
                Lookup::NotFound => return Ok(Err(false)),
            };
            let value: Value = body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            let mut issues = validate_resource(ty, &value);
            if !issues.iter().any(Issue::is_error) {
                issues.extend(business_rules(ty, &value));
            }
            let refs = local_references(ty, &value, &base);
            match check_references(tx, &refs, &|_, _| false) {
                Ok(()) => {}
                Err(Failure::Abort(e)) => issues.extend(e.issues),
                Err(Failure::Tx(e)) => return Err::<_, TxError>(e),
            }
            Ok(Ok(issues))
        })
        .await?;
    match found {
        Ok(issues) => Ok(issues),
        Err(true) => Err(AppError::gone(format!("{ty}/{id} was deleted"))),
        Err(false) => Err(AppError::not_found(format!("{ty}/{id} does not exist"))),
    }
}

/// The audit record of a dry run (its own writes, audit rows included, were rolled back).
async fn audit(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: Option<&str>,
    issues: &[Issue],
) -> Result<(), AppError> {
    let ty = def.name;
    let id = id.map(str::to_owned);
    let outcome = if issues.iter().any(Issue::is_error) {
        "invalid"
    } else {
        "valid"
    };
    app.store
        .read(principal.access(), move |tx| {
            tx.audit(AuditRecord {
                action: "E",
                interaction: "validate",
                resource_type: ty,
                resource_id: id.as_deref(),
                version_id: None,
                outcome,
            })
        })
        .await?;
    Ok(())
}
