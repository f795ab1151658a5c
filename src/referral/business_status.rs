//! `Task.businessStatus`: finer progress within a Task status, from this project's
//! CodeSystem (`profiles/CodeSystem-task-business-status.json`).

use serde_json::Value;

use super::codes::CS_TASK_BUSINESS_STATUS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusinessStatus {
    /// Set by the hub: no welfare organisation could be chosen.
    Unroutable,
    ContactMade,
    PatientUnreachable,
    IntakePlanned,
    IntakeHeld,
    ActivityStarted,
    ReferredOnward,
    ClosedGoalReached,
    ClosedEarly,
    /// Set by the hub: the referrer asked to cancel a Task already in progress.
    CancellationRequested,
}

impl BusinessStatus {
    pub const ALL: [Self; 10] = [
        Self::Unroutable,
        Self::ContactMade,
        Self::PatientUnreachable,
        Self::IntakePlanned,
        Self::IntakeHeld,
        Self::ActivityStarted,
        Self::ReferredOnward,
        Self::ClosedGoalReached,
        Self::ClosedEarly,
        Self::CancellationRequested,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Unroutable => "unroutable",
            Self::ContactMade => "contact-made",
            Self::PatientUnreachable => "patient-unreachable",
            Self::IntakePlanned => "intake-planned",
            Self::IntakeHeld => "intake-held",
            Self::ActivityStarted => "activity-started",
            Self::ReferredOnward => "referred-onward",
            Self::ClosedGoalReached => "closed-goal-reached",
            Self::ClosedEarly => "closed-early",
            Self::CancellationRequested => "cancellation-requested",
        }
    }

    /// English display, as in the CodeSystem.
    pub fn display(self) -> &'static str {
        match self {
            Self::Unroutable => "Unroutable",
            Self::ContactMade => "Contact made",
            Self::PatientUnreachable => "Patient unreachable",
            Self::IntakePlanned => "Intake planned",
            Self::IntakeHeld => "Intake held",
            Self::ActivityStarted => "Activity started",
            Self::ReferredOnward => "Referred onward",
            Self::ClosedGoalReached => "Closed, goal reached",
            Self::ClosedEarly => "Closed early",
            Self::CancellationRequested => "Cancellation requested",
        }
    }

    /// Dutch display (the CodeSystem's `nl` designation).
    pub fn display_nl(self) -> &'static str {
        match self {
            Self::Unroutable => "Niet te routeren",
            Self::ContactMade => "Contact gelegd",
            Self::PatientUnreachable => "Patiënt niet bereikbaar",
            Self::IntakePlanned => "Intake gepland",
            Self::IntakeHeld => "Intake gehouden",
            Self::ActivityStarted => "Activiteit gestart",
            Self::ReferredOnward => "Doorverwezen",
            Self::ClosedGoalReached => "Afgesloten, doel bereikt",
            Self::ClosedEarly => "Voortijdig afgesloten",
            Self::CancellationRequested => "Annulering aangevraagd",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Codes only the hub sets; a client may keep them but not introduce them.
    pub fn hub_managed(self) -> bool {
        matches!(self, Self::Unroutable | Self::CancellationRequested)
    }

    /// Whether the welfare organisation has reached the patient (the contact deadline
    /// is met).
    pub fn implies_contact(self) -> bool {
        matches!(
            self,
            Self::ContactMade
                | Self::IntakePlanned
                | Self::IntakeHeld
                | Self::ActivityStarted
                | Self::ReferredOnward
                | Self::ClosedGoalReached
                | Self::ClosedEarly
        )
    }

    /// The coding for `Task.businessStatus`.
    pub fn codeable_concept(self) -> Value {
        serde_json::json!({
            "coding": [{"system": CS_TASK_BUSINESS_STATUS, "code": self.code(), "display": self.display()}],
            "text": self.display(),
        })
    }
}

/// What a `Task.businessStatus` holds, read leniently: the project code, if any.
pub fn read(task: &Value) -> Result<Option<BusinessStatus>, BusinessStatusError> {
    let Some(bs) = task.get("businessStatus") else {
        return Ok(None);
    };
    let codings = bs
        .get("coding")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut found = None;
    for (i, c) in codings.iter().enumerate() {
        if c.get("system").and_then(Value::as_str) != Some(CS_TASK_BUSINESS_STATUS) {
            continue;
        }
        let code = c.get("code").and_then(Value::as_str).unwrap_or_default();
        match BusinessStatus::from_code(code) {
            Some(s) if found.is_none() || found == Some(s) => found = Some(s),
            Some(_) => return Err(BusinessStatusError::Conflicting { index: i }),
            None => {
                return Err(BusinessStatusError::UnknownCode {
                    index: i,
                    code: code.to_owned(),
                })
            }
        }
    }
    match found {
        Some(s) => Ok(Some(s)),
        None => Err(BusinessStatusError::NoProjectCoding),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusinessStatusError {
    /// `businessStatus` has no coding from the project CodeSystem.
    NoProjectCoding,
    /// `coding[index]` names a code the CodeSystem does not define.
    UnknownCode { index: usize, code: String },
    /// `coding[index]` contradicts an earlier project coding.
    Conflicting { index: usize },
}

impl BusinessStatusError {
    /// FHIRPath of the offending element and a sentence for people.
    pub fn describe(&self) -> (String, String) {
        match self {
            Self::NoProjectCoding => (
                "Task.businessStatus".into(),
                format!("Task.businessStatus needs a coding from {CS_TASK_BUSINESS_STATUS}"),
            ),
            Self::UnknownCode { index, code } => (
                format!("Task.businessStatus.coding[{index}].code"),
                format!(
                    "'{code}' is not a code of {CS_TASK_BUSINESS_STATUS}; use one of {}",
                    BusinessStatus::ALL
                        .iter()
                        .filter(|s| !s.hub_managed())
                        .map(|s| s.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Self::Conflicting { index } => (
                format!("Task.businessStatus.coding[{index}]"),
                "Task.businessStatus holds two different codes of the project CodeSystem".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_project_codes_and_refuses_unknown_ones() {
        assert_eq!(read(&json!({})), Ok(None));
        let t = json!({"businessStatus": BusinessStatus::IntakePlanned.codeable_concept()});
        assert_eq!(read(&t), Ok(Some(BusinessStatus::IntakePlanned)));
        let t = json!({"businessStatus": {"coding": [{"system": CS_TASK_BUSINESS_STATUS, "code": "intake"}]}});
        assert!(matches!(
            read(&t),
            Err(BusinessStatusError::UnknownCode { index: 0, .. })
        ));
        let t = json!({"businessStatus": {"text": "bezig"}});
        assert_eq!(read(&t), Err(BusinessStatusError::NoProjectCoding));
    }

    #[test]
    fn contact_is_implied_by_progress_after_contact() {
        assert!(BusinessStatus::IntakeHeld.implies_contact());
        assert!(!BusinessStatus::PatientUnreachable.implies_contact());
        assert!(!BusinessStatus::Unroutable.implies_contact());
    }
}
