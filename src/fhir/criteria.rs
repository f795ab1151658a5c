//! Search criteria from a query string, for conditional operations (`If-None-Exist`,
//! conditional update and delete): the search engine's parameters, modifiers and
//! chains, without result parameters.

use crate::fhir::outcome::Issue;
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::{parse_search, ParseOptions};
use crate::store::Criterion;

/// Parses `identifier=http://x|123&birthdate=1958-04-17` against the parameters `def`
/// registers. Parameters named in `ignore` are skipped; result parameters (`_sort`,
/// `_include`, ...) and unknown parameters are refused.
pub fn parse_criteria(
    def: &ResourceDef,
    query: &str,
    ignore: &[&str],
) -> Result<Vec<Criterion>, Issue> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let opts = ParseOptions {
        criteria_only: true,
        ..ParseOptions::default()
    };
    Ok(parse_search(def, &pairs, ignore, opts)?.criteria)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::registry::resource;
    use crate::store::query::{Match, SystemMatch};

    #[test]
    fn token_forms() {
        let def = resource("Patient").unwrap();
        let c = parse_criteria(
            def,
            "identifier=urn:oid:2.16.840.1.113883.2.4.6.3%7C999999011,|x,sys|,plain&_id=a",
            &[],
        )
        .unwrap();
        let Criterion::Any(t) = &c[0] else { panic!() };
        let Match::Token { system, code, .. } = &t[0] else {
            panic!()
        };
        assert_eq!(
            *system,
            SystemMatch::Exactly("http://fhir.nl/fhir/NamingSystem/bsn".into())
        );
        assert_eq!(code.as_deref(), Some("999999011"));
        assert!(matches!(
            &t[1],
            Match::Token {
                system: SystemMatch::NoSystem,
                ..
            }
        ));
        assert!(matches!(&t[2], Match::Token { code: None, .. }));
        assert!(matches!(
            &t[3],
            Match::Token {
                system: SystemMatch::Any,
                ..
            }
        ));
        assert_eq!(c[1], Criterion::Any(vec![Match::Id("a".into())]));
    }

    #[test]
    fn refused_parameters() {
        let def = resource("Patient").unwrap();
        for q in [
            "unknown=x",
            "identifier:text=x",
            "_sort=birthdate",
            "birthdate=ap2020",
            "birthdate=yesterday",
            "family:missing=maybe",
            "general-practitioner.name=x",
        ] {
            assert!(parse_criteria(def, q, &[]).is_err(), "{q}");
        }
        assert!(parse_criteria(def, "_count=5", &["_count"])
            .unwrap()
            .is_empty());
        let task = resource("Task").unwrap();
        for q in [
            "patient.identifier=x",
            "subject:Patient.identifier=x",
            "owner:identifier=http://fhir.nl/fhir/NamingSystem/ura|1",
            "owner:Organization=o1",
            "focus=ServiceRequest/1",
            "status:not=completed",
            "authored-on=ge2026-11&modified=lt2026-11-20T10:00:00Z",
            "status=%7Crequested",
            "identifier=urn:x%7C",
            "identifier=a%5C%7Cb",
        ] {
            assert!(parse_criteria(task, q, &[]).is_ok(), "{q}");
        }
        for q in [
            "patient.identifier.value=x",
            "status.x=y",
            "owner:Consent=1",
            "status:exact=x",
            "status=%7C",
            "status=a%7Cb%7Cc",
            "owner:identifier=%7C",
            "patient.identifier=%7C",
            "_id=a%00b",
            "status=in%00",
        ] {
            assert!(parse_criteria(task, q, &[]).is_err(), "{q}");
        }
    }
}
