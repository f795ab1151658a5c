//! The operator's postcode file (`wor-hub postcodes import`): a CSV mapping PC4 or PC6
//! postcodes to CBS municipality codes, such as the yearly CBS "postcode, huisnummer,
//! buurt, wijk, gemeente" file.
//!
//! Format:
//! - The first row is a header. Separator `;` if the header line contains one, else `,`
//!   (CBS publishes `;`). Fields may be quoted. A UTF-8 byte order mark is ignored.
//! - Header names are matched case-insensitively. The postcode column is the first of
//!   `pc6`, `pc4`, `postcode` present; the municipality column the first of
//!   `gemeentecode`, `gemeente`, `gm_code`, `gemcode`, `municipality`, or else a
//!   `gemeente` plus year header (`Gemeente2023`). Other columns are ignored.
//! - Postcodes are `1234`, `1234AB` or `1234 AB`; municipality codes `GM0484`, `0484` or
//!   `484`, and must be in the 2023 CBS table. Rows whose fields are all empty are skipped.
//! - A postcode listed twice for the same municipality counts once (the CBS file has a
//!   row per house number); listed for two municipalities, the file is refused.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Read};

use super::municipality;
use super::postcode::Postcode;

/// Accepted postcode headers, in order of preference (PC6 is the more precise).
const POSTCODE_HEADERS: &[&str] = &["pc6", "pc4", "postcode"];
/// Accepted municipality headers, in order of preference; then `gemeente` plus a year.
const MUNICIPALITY_HEADERS: &[&str] = &[
    "gemeentecode",
    "gemeente",
    "gm_code",
    "gemcode",
    "municipality",
];

/// Why a postcode file was refused. Lines are counted from 1, the header being line 1.
#[derive(Debug, thiserror::Error)]
pub enum PostcodeFileError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("the file is empty: the first line must be a header")]
    Empty,
    #[error("the file has a header but no postcode rows")]
    NoRows,
    #[error("no {what} column: expected a header {accepted} (found: {found})")]
    MissingColumn {
        what: &'static str,
        accepted: &'static str,
        found: String,
    },
    #[error("line {line}, column {column}: no value")]
    MissingValue { line: u64, column: String },
    #[error("line {line}, column {column}: {value:?} is not a postcode (1234 or 1234 AB)")]
    BadPostcode {
        line: u64,
        column: String,
        value: String,
    },
    #[error(
        "line {line}, column {column}: {value:?} is not a municipality code of the 2023 CBS \
         table (GM0484, 0484 or 484)"
    )]
    UnknownMunicipality {
        line: u64,
        column: String,
        value: String,
    },
    #[error(
        "line {line}: postcode {postcode} is listed for {municipality}, but line {first_line} \
         lists it for {first_municipality}"
    )]
    Contradiction {
        line: u64,
        postcode: String,
        municipality: String,
        first_line: u64,
        first_municipality: String,
    },
}

/// Parses a postcode file into `(postcode, municipality)` pairs sorted by postcode, each
/// postcode once: `("2771", "GM0484")` for a PC4, `("2771AB", "GM0484")` for a PC6.
pub fn parse_postcode_csv(reader: impl Read) -> Result<Vec<(String, String)>, PostcodeFileError> {
    // The separator is decided on the header line, so read it first and hand it back
    // to the CSV reader ahead of the rest (line numbers stay those of the file).
    let mut reader = BufReader::new(reader);
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first)?;
    if let Some(rest) = first.strip_prefix(b"\xEF\xBB\xBF") {
        first = rest.to_vec();
    }
    if first.iter().all(u8::is_ascii_whitespace) {
        return Err(PostcodeFileError::Empty);
    }
    let delimiter = if first.contains(&b';') { b';' } else { b',' };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(Cursor::new(first).chain(reader));

    // Bytes, not strings: only two columns must be text; a Latin-1 name elsewhere in
    // the row must not make the whole file unreadable.
    let names: Vec<String> = csv
        .byte_headers()?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let column = |preferred: &[&str], what, accepted, fallback: &dyn Fn(&str) -> bool| {
        preferred
            .iter()
            .find_map(|p| lower.iter().position(|h| h == p))
            .or_else(|| lower.iter().position(|h| fallback(h)))
            .ok_or_else(|| PostcodeFileError::MissingColumn {
                what,
                accepted,
                found: names.join(", "),
            })
    };
    let pc_col = column(
        POSTCODE_HEADERS,
        "postcode",
        "PC6, PC4 or Postcode",
        &|_| false,
    )?;
    let gm_col = column(
        MUNICIPALITY_HEADERS,
        "municipality",
        "Gemeentecode, Gemeente, GM_code, Gemcode, Municipality or Gemeente<year>",
        &|h| {
            h.strip_prefix("gemeente")
                .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        },
    )?;

    let mut seen: HashMap<String, (&'static str, u64)> = HashMap::new();
    let mut record = csv::ByteRecord::new();
    while csv.read_byte_record(&mut record)? {
        if record.iter().all(<[u8]>::is_empty) {
            continue;
        }
        let line = record.position().map_or(0, csv::Position::line);
        let value = |col: usize| match record.get(col) {
            Some(v) if !v.is_empty() => Ok(String::from_utf8_lossy(v)),
            _ => Err(PostcodeFileError::MissingValue {
                line,
                column: names[col].clone(),
            }),
        };
        let raw = value(pc_col)?;
        let postcode = Postcode::parse(&raw)
            .map(|p| p.pc6().unwrap_or_else(|| p.pc4().to_string()))
            .ok_or_else(|| PostcodeFileError::BadPostcode {
                line,
                column: names[pc_col].clone(),
                value: raw.into_owned(),
            })?;
        let raw = value(gm_col)?;
        let code = municipality::by_code(&raw)
            .map(|m| m.code.as_str())
            .ok_or_else(|| PostcodeFileError::UnknownMunicipality {
                line,
                column: names[gm_col].clone(),
                value: raw.into_owned(),
            })?;
        match seen.entry(postcode) {
            Entry::Vacant(e) => {
                e.insert((code, line));
            }
            Entry::Occupied(e) => {
                let (first, first_line) = *e.get();
                if first != code {
                    return Err(PostcodeFileError::Contradiction {
                        line,
                        postcode: e.key().clone(),
                        municipality: code.to_owned(),
                        first_line,
                        first_municipality: first.to_owned(),
                    });
                }
            }
        }
    }
    if seen.is_empty() {
        return Err(PostcodeFileError::NoRows);
    }
    let mut rows: Vec<(String, String)> = seen
        .into_iter()
        .map(|(postcode, (code, _))| (postcode, code.to_owned()))
        .collect();
    rows.sort_unstable();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, PostcodeFileError> {
        parse_postcode_csv(text.as_bytes())
    }

    fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        rows.iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect()
    }

    #[test]
    fn cbs_pc6_file_with_a_row_per_house_number() {
        let file = "PC6;Huisnummer;Buurt2023;Wijk2023;Gemeente2023\n\
                    2771AB;1;04840101;048401;484\n\
                    2771AB;3;04840101;048401;484\n\
                    2771AB;5;04840101;048401;484\n\
                    7511 aa;2;01530000;015300;0153\n\
                    2771AC;12;04840102;048401;484\n";
        assert_eq!(
            parse(file).unwrap(),
            pairs(&[
                ("2771AB", "GM0484"),
                ("2771AC", "GM0484"),
                ("7511AA", "GM0153")
            ])
        );
    }

    #[test]
    fn comma_pc4_file_with_gm_codes_and_quotes() {
        let file = "Postcode,Gemeentecode,Gemeentenaam\r\n\
                    \"2771\",\"GM0484\",\"Alphen aan den Rijn\"\r\n\
                    7511,gm0153,Enschede\r\n\
                    \r\n\
                    ,,\r\n";
        assert_eq!(
            parse(file).unwrap(),
            pairs(&[("2771", "GM0484"), ("7511", "GM0153")])
        );
    }

    #[test]
    fn byte_order_mark_and_header_case_and_preference() {
        // PC6 is preferred over PC4; gemeentecode over a name column "gemeente".
        let file = "\u{feff} pc4 ; PC6 ;Gemeente;GEMEENTECODE\n2771;2771AB;Alphen;484\n";
        assert_eq!(parse(file).unwrap(), pairs(&[("2771AB", "GM0484")]));
    }

    #[test]
    fn a_latin1_name_in_another_column_is_no_problem() {
        let mut file = b"pc4;gemeente2023;naam\n9011;1900;S".to_vec();
        file.extend_from_slice(&[0xFA]); // 'ú' in Latin-1
        file.extend_from_slice(b"dwest-Frysl\xE2n\n");
        assert_eq!(
            parse_postcode_csv(&file[..]).unwrap(),
            pairs(&[("9011", "GM1900")])
        );
    }

    #[test]
    fn bad_postcode_names_line_and_column() {
        let err = parse("PC6;Gemeente2023\n2771AB;484\n0771AB;484\n").unwrap_err();
        assert!(
            matches!(&err, PostcodeFileError::BadPostcode { line: 3, column, value }
                if column == "PC6" && value == "0771AB"),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = parse("postcode,gemeente\n2771,\n").unwrap_err();
        assert!(
            matches!(&err, PostcodeFileError::MissingValue { line: 2, column } if column == "gemeente"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_municipality() {
        let err = parse("postcode,gemeentecode\n2771,GM0484\n1234,GM9999\n").unwrap_err();
        assert!(
            matches!(&err, PostcodeFileError::UnknownMunicipality { line: 3, column, value }
                if column == "gemeentecode" && value == "GM9999"),
            "{err:?}"
        );
        assert!(matches!(
            parse("postcode,gemeentecode\n2771,Alphen aan den Rijn\n"),
            Err(PostcodeFileError::UnknownMunicipality { line: 2, .. })
        ));
    }

    #[test]
    fn missing_column_names_the_accepted_headers() {
        let err = parse("zip;gemeente\n2771;484\n").unwrap_err();
        assert!(matches!(
            err,
            PostcodeFileError::MissingColumn {
                what: "postcode",
                ..
            }
        ));
        assert!(err.to_string().contains("PC6, PC4 or Postcode"), "{err}");
        assert!(err.to_string().contains("zip"), "{err}");
        let err = parse("PC6;Gemeente20231;Wijk2023\n2771AB;484;1\n").unwrap_err();
        assert!(matches!(
            err,
            PostcodeFileError::MissingColumn {
                what: "municipality",
                ..
            }
        ));
        assert!(err.to_string().contains("Gemeente<year>"), "{err}");
    }

    #[test]
    fn contradictory_duplicate_is_refused() {
        let err = parse("PC6;Gemeente2023\n2771AB;484\n7511AA;153\n2771 ab;153\n").unwrap_err();
        assert!(
            matches!(&err, PostcodeFileError::Contradiction { line: 4, postcode, municipality, first_line: 2, first_municipality }
                if postcode == "2771AB" && municipality == "GM0153" && first_municipality == "GM0484"),
            "{err:?}"
        );
    }

    #[test]
    fn empty_file_and_header_only() {
        assert!(matches!(parse(""), Err(PostcodeFileError::Empty)));
        assert!(matches!(parse("\n"), Err(PostcodeFileError::Empty)));
        assert!(matches!(
            parse("PC6;Gemeente2023\n"),
            Err(PostcodeFileError::NoRows)
        ));
        assert!(matches!(
            parse("PC6;Gemeente2023"),
            Err(PostcodeFileError::NoRows)
        ));
    }
}
