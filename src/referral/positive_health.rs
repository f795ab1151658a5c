//! Positive Health (Positieve Gezondheid): the six dimensions of the questionnaire in
//! `profiles/Questionnaire-positive-health.json`, and the rules the hub checks on every
//! write of a QuestionnaireResponse that answers it. Welfare organisations link such
//! responses from `Task.output` (at intake and at closing) as feedback to the referrer.

use serde_json::Value;

use super::codes::QUESTIONNAIRE_POSITIVE_HEALTH;
use crate::fhir::outcome::{Issue, IssueCode};

/// Lowest and highest score of a dimension.
pub const MIN_SCORE: i64 = 0;
pub const MAX_SCORE: i64 = 10;

/// One question of the questionnaire, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    BodilyFunctions,
    MentalWellbeing,
    Meaningfulness,
    QualityOfLife,
    Participation,
    DailyFunctioning,
}

impl Dimension {
    pub const ALL: [Self; 6] = [
        Self::BodilyFunctions,
        Self::MentalWellbeing,
        Self::Meaningfulness,
        Self::QualityOfLife,
        Self::Participation,
        Self::DailyFunctioning,
    ];

    /// The item's `linkId`.
    pub fn link_id(self) -> &'static str {
        match self {
            Self::BodilyFunctions => "bodily-functions",
            Self::MentalWellbeing => "mental-wellbeing",
            Self::Meaningfulness => "meaningfulness",
            Self::QualityOfLife => "quality-of-life",
            Self::Participation => "participation",
            Self::DailyFunctioning => "daily-functioning",
        }
    }

    /// The item's `text` (Dutch, the questionnaire's language).
    pub fn text_nl(self) -> &'static str {
        match self {
            Self::BodilyFunctions => "Lichaamsfuncties",
            Self::MentalWellbeing => "Mentaal welbevinden",
            Self::Meaningfulness => "Zingeving",
            Self::QualityOfLife => "Kwaliteit van leven",
            Self::Participation => "Meedoen",
            Self::DailyFunctioning => "Dagelijks functioneren",
        }
    }

    /// The English translation of the item's text.
    pub fn text_en(self) -> &'static str {
        match self {
            Self::BodilyFunctions => "Bodily functions",
            Self::MentalWellbeing => "Mental well-being",
            Self::Meaningfulness => "Meaningfulness",
            Self::QualityOfLife => "Quality of life",
            Self::Participation => "Participation",
            Self::DailyFunctioning => "Daily functioning",
        }
    }

    pub fn from_link_id(link_id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.link_id() == link_id)
    }
}

/// Whether a `QuestionnaireResponse.questionnaire` canonical names the Positive Health
/// questionnaire, in any version (`url` or `url|version`).
pub fn is_positive_health(canonical: &str) -> bool {
    let url = canonical.split_once('|').map_or(canonical, |(url, _)| url);
    url == QUESTIONNAIRE_POSITIVE_HEALTH
}

/// Problems with a QuestionnaireResponse's answers to the Positive Health questionnaire:
/// only the six linkIds, each at most once, no nested items, each answered with one
/// `valueInteger` from 0 to 10; a `completed` (or `amended`) response answers all six.
/// Responses to other questionnaires have none.
pub fn check(response: &Value) -> Vec<Issue> {
    let Some(questionnaire) = response.get("questionnaire").and_then(Value::as_str) else {
        return Vec::new();
    };
    if !is_positive_health(questionnaire) {
        return Vec::new();
    }
    // `amended` is a completed response changed afterwards: still complete.
    let complete = matches!(
        response.get("status").and_then(Value::as_str),
        Some("completed" | "amended")
    );
    let mut issues = Vec::new();
    let mut seen: Vec<Dimension> = Vec::new();
    let items = response
        .get("item")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let at = format!("QuestionnaireResponse.item[{i}]");
        let link_id = item.get("linkId").and_then(Value::as_str);
        match link_id.map(|l| (l, Dimension::from_link_id(l))) {
            None => issues.push(
                Issue::error(IssueCode::Required, "Every item needs a linkId")
                    .at(format!("{at}.linkId")),
            ),
            Some((other, None)) => issues.push(
                Issue::error(
                    IssueCode::Value,
                    format!(
                        "'{}' is not a question of the Positive Health questionnaire; use one of {}",
                        other.chars().take(64).collect::<String>(),
                        link_ids()
                    ),
                )
                .at(format!("{at}.linkId")),
            ),
            Some((_, Some(d))) if seen.contains(&d) => issues.push(
                Issue::error(
                    IssueCode::Duplicate,
                    format!("'{}' is answered more than once", d.link_id()),
                )
                .at(format!("{at}.linkId")),
            ),
            Some((_, Some(d))) => seen.push(d),
        }
        if item.get("item").is_some() {
            issues.push(nested(&at));
        }
        check_answers(item, &at, complete, &mut issues);
    }
    if complete {
        for d in Dimension::ALL.into_iter().filter(|d| !seen.contains(d)) {
            issues.push(
                Issue::error(
                    IssueCode::Required,
                    format!(
                        "A completed Positive Health response answers all six questions; '{}' ({}) is missing",
                        d.link_id(),
                        d.text_en()
                    ),
                )
                .at("QuestionnaireResponse.item"),
            );
        }
    }
    issues
}

fn link_ids() -> String {
    Dimension::ALL
        .iter()
        .map(|d| d.link_id())
        .collect::<Vec<_>>()
        .join(", ")
}

fn nested(at: &str) -> Issue {
    Issue::error(
        IssueCode::Structure,
        "The Positive Health questionnaire has no nested items",
    )
    .at(format!("{at}.item"))
}

/// One answer per question, a `valueInteger` from 0 to 10; none yet is fine unless the
/// response is complete.
fn check_answers(item: &Value, at: &str, complete: bool, issues: &mut Vec<Issue>) {
    let answers = item
        .get("answer")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if answers.is_empty() {
        if complete {
            issues.push(
                Issue::error(
                    IssueCode::Required,
                    "A completed Positive Health response has a score for every question",
                )
                .at(format!("{at}.answer")),
            );
        }
        return;
    }
    if answers.len() > 1 {
        issues.push(
            Issue::error(
                IssueCode::Structure,
                format!("One score per question, found {} answers", answers.len()),
            )
            .at(format!("{at}.answer[1]")),
        );
    }
    for (j, answer) in answers.iter().enumerate() {
        let at = format!("{at}.answer[{j}]");
        if answer.get("item").is_some() {
            issues.push(nested(&at));
        }
        match answer.get("valueInteger") {
            Some(v) => match v.as_i64() {
                Some(score) if (MIN_SCORE..=MAX_SCORE).contains(&score) => {}
                _ => issues.push(
                    Issue::error(
                        IssueCode::Value,
                        format!(
                            "A Positive Health score is a whole number from {MIN_SCORE} to {MAX_SCORE}, not {}",
                            v.to_string().chars().take(32).collect::<String>()
                        ),
                    )
                    .at(format!("{at}.valueInteger")),
                ),
            },
            None => {
                let other = answer.as_object().and_then(|m| {
                    m.keys().find(|k| {
                        k.strip_prefix("value")
                            .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
                    })
                });
                issues.push(match other {
                    Some(key) => Issue::error(
                        IssueCode::Value,
                        format!(
                            "A Positive Health score is a valueInteger from {MIN_SCORE} to {MAX_SCORE}, not {key}"
                        ),
                    )
                    .at(format!("{at}.{key}")),
                    None => Issue::error(
                        IssueCode::Required,
                        format!("The answer needs a valueInteger from {MIN_SCORE} to {MAX_SCORE}"),
                    )
                    .at(format!("{at}.valueInteger")),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn response(status: &str, scores: &[(&str, Value)]) -> Value {
        json!({
            "resourceType": "QuestionnaireResponse",
            "questionnaire": QUESTIONNAIRE_POSITIVE_HEALTH,
            "status": status,
            "item": scores
                .iter()
                .map(|(l, v)| json!({"linkId": l, "answer": [{"valueInteger": v}]}))
                .collect::<Vec<_>>(),
        })
    }

    fn all_six() -> Vec<(&'static str, Value)> {
        Dimension::ALL
            .iter()
            .enumerate()
            .map(|(i, d)| (d.link_id(), json!(i * 2)))
            .collect()
    }

    /// (code, expression) of each issue.
    fn found(issues: &[Issue]) -> Vec<(&'static str, &str)> {
        issues
            .iter()
            .map(|i| (i.code.as_str(), i.expression.as_deref().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_complete_response_with_scores_0_to_10_is_fine() {
        assert!(check(&response("completed", &all_six())).is_empty());
        let mut edges = all_six();
        edges[0].1 = json!(0);
        edges[5].1 = json!(10);
        assert!(check(&response("amended", &edges)).is_empty());
    }

    #[test]
    fn in_progress_may_leave_questions_open() {
        let some = &all_six()[..2];
        assert!(check(&response("in-progress", some)).is_empty());
        let mut r = response("in-progress", some);
        r["item"][1]["answer"] = json!([]);
        assert!(check(&r).is_empty());
        assert!(check(
            &json!({"questionnaire": QUESTIONNAIRE_POSITIVE_HEALTH, "status": "in-progress"})
        )
        .is_empty());
    }

    #[test]
    fn scores_outside_0_to_10_or_not_whole_are_refused() {
        let mut scores = all_six();
        scores[2].1 = json!(11);
        scores[3].1 = json!(-1);
        scores[4].1 = json!(7.5);
        let issues = check(&response("completed", &scores));
        assert_eq!(
            found(&issues),
            [
                (
                    "value",
                    "QuestionnaireResponse.item[2].answer[0].valueInteger"
                ),
                (
                    "value",
                    "QuestionnaireResponse.item[3].answer[0].valueInteger"
                ),
                (
                    "value",
                    "QuestionnaireResponse.item[4].answer[0].valueInteger"
                ),
            ]
        );
        assert!(issues[0].diagnostics.contains("not 11"), "{issues:?}");
    }

    #[test]
    fn unknown_and_repeated_questions_are_refused() {
        let mut scores = all_six();
        scores.push(("happiness", json!(5)));
        scores.push(("participation", json!(5)));
        let issues = check(&response("completed", &scores));
        assert_eq!(
            found(&issues),
            [
                ("value", "QuestionnaireResponse.item[6].linkId"),
                ("duplicate", "QuestionnaireResponse.item[7].linkId"),
            ]
        );
        assert!(issues[0]
            .diagnostics
            .contains("bodily-functions, mental-wellbeing"));
    }

    #[test]
    fn a_completed_response_answers_all_six() {
        let mut scores = all_six();
        scores.remove(4);
        let issues = check(&response("completed", &scores));
        assert_eq!(found(&issues), [("required", "QuestionnaireResponse.item")]);
        assert!(issues[0].diagnostics.contains("'participation'"));
        let mut r = response("completed", &all_six());
        r["item"][1].as_object_mut().unwrap().remove("answer");
        assert_eq!(
            found(&check(&r)),
            [("required", "QuestionnaireResponse.item[1].answer")]
        );
        let r = json!({"questionnaire": QUESTIONNAIRE_POSITIVE_HEALTH, "status": "completed"});
        assert_eq!(check(&r).len(), 6);
    }

    #[test]
    fn one_integer_answer_per_question() {
        let mut r = response("in-progress", &all_six()[..3]);
        r["item"][0]["answer"] = json!([{"valueString": "7"}]);
        r["item"][1]["answer"] = json!([{"valueInteger": 3}, {"valueInteger": 4}]);
        r["item"][2]["answer"] = json!([{"extension": []}]);
        assert_eq!(
            found(&check(&r)),
            [
                (
                    "value",
                    "QuestionnaireResponse.item[0].answer[0].valueString"
                ),
                ("structure", "QuestionnaireResponse.item[1].answer[1]"),
                (
                    "required",
                    "QuestionnaireResponse.item[2].answer[0].valueInteger"
                ),
            ]
        );
    }

    #[test]
    fn nested_items_and_missing_link_ids_are_refused() {
        let mut r = response("in-progress", &all_six()[..2]);
        r["item"][0]["item"] = json!([{"linkId": "x"}]);
        r["item"][1]["answer"][0]["item"] = json!([{"linkId": "y"}]);
        r["item"]
            .as_array_mut()
            .unwrap()
            .push(json!({"answer": [{"valueInteger": 1}]}));
        assert_eq!(
            found(&check(&r)),
            [
                ("structure", "QuestionnaireResponse.item[0].item"),
                ("structure", "QuestionnaireResponse.item[1].answer[0].item"),
                ("required", "QuestionnaireResponse.item[2].linkId"),
            ]
        );
    }

    #[test]
    fn only_responses_to_positive_health_are_checked() {
        let mut r = response("completed", &[("happiness", json!(99))]);
        assert!(!check(&r).is_empty());
        r["questionnaire"] = json!(format!("{QUESTIONNAIRE_POSITIVE_HEALTH}|1.0.0"));
        assert!(!check(&r).is_empty());
        r["questionnaire"] = json!("https://example.org/Questionnaire/phq-9");
        assert!(check(&r).is_empty());
        r.as_object_mut().unwrap().remove("questionnaire");
        assert!(check(&r).is_empty());
        assert!(!is_positive_health(&format!(
            "{QUESTIONNAIRE_POSITIVE_HEALTH}-v2"
        )));
    }
}
