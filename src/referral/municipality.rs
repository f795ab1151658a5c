//! Dutch municipalities (CBS `GMxxxx` codes) and tolerant matching of municipality
//! names, from the 2023 CBS table shipped in `data/cbs-gemeenten-2023.csv`.

use std::collections::HashMap;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

/// One municipality of the CBS table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// `GM` and four digits, e.g. `GM0484`.
    pub code: String,
    pub name: String,
}

const TABLE_CSV: &str = include_str!("../../data/cbs-gemeenten-2023.csv");

/// Names people write for a municipality whose official CBS name differs. Keys are
/// compared after [`name_key`], so case, spaces, punctuation and accents do not matter.
const VARIANTS: &[(&str, &str)] = &[
    ("Den Haag", "GM0518"),
    ("The Hague", "GM0518"),
    ("Den Bosch", "GM0796"),
    ("Hertogenbosch", "GM0796"),
    ("Bergen NH", "GM0373"),
    ("Bergen Noord-Holland", "GM0373"),
    ("Bergen L", "GM0893"),
    ("Bergen Limburg", "GM0893"),
    ("Hengelo O", "GM0164"),
    ("Hengelo Ov", "GM0164"),
    ("Hengelo Overijssel", "GM0164"),
    ("Nuenen", "GM0820"),
    ("Nuenen c.a.", "GM0820"),
    ("Sudwest Friesland", "GM1900"),
    ("Noordoost Friesland", "GM1970"),
    ("Noordoost-Fryslan", "GM1970"),
];

struct Table {
    by_code: HashMap<String, Municipality>,
    by_name: HashMap<String, String>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut reader = csv::Reader::from_reader(TABLE_CSV.as_bytes());
    let mut by_code = HashMap::new();
    let mut by_name = HashMap::new();
    for record in reader.records().flatten() {
        let (Some(code), Some(name)) = (record.get(0), record.get(1)) else {
            continue;
        };
        by_name.insert(name_key(name), code.to_owned());
        by_code.insert(
            code.to_owned(),
            Municipality {
                code: code.to_owned(),
                name: name.to_owned(),
            },
        );
    }
    for (variant, code) in VARIANTS {
        by_name
            .entry(name_key(variant))
            .or_insert((*code).to_owned());
    }
    Table { by_code, by_name }
});

/// All municipalities in the table.
pub fn count() -> usize {
    TABLE.by_code.len()
}

/// The municipality of a CBS code in any common form: `GM0484`, `gm0484`, `0484` or
/// `484` (the form in many CBS postcode files).
pub fn by_code(code: &str) -> Option<&'static Municipality> {
    TABLE.by_code.get(&normalise_code(code)?)
}

/// `GM` plus four digits, or `None` when `code` is not shaped like a CBS code.
pub fn normalise_code(code: &str) -> Option<String> {
    let code = code.trim();
    let digits = match code.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("GM") => &code[2..],
        _ => code,
    };
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("GM{digits:0>4}"))
}

/// The municipality named `name`, tolerant of case, spaces, punctuation, diacritics,
/// a leading "gemeente" and the common variants ("Den Haag" = "'s-Gravenhage").
pub fn by_name(name: &str) -> Option<&'static Municipality> {
    let key = name_key(name);
    let key = key.strip_prefix("gemeente").unwrap_or(&key);
    let code = TABLE.by_name.get(key)?;
    TABLE.by_code.get(code)
}

/// Lower case letters and digits only, accents removed: `'s-Gravenhage` ->
/// `sgravenhage`, `Súdwest-Fryslân` -> `sudwestfryslan`.
fn name_key(name: &str) -> String {
    name.nfd()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2023_table_is_complete() {
        assert_eq!(count(), 342);
        assert_eq!(
            by_code("GM0484").map(|m| m.name.as_str()),
            Some("Alphen aan den Rijn")
        );
        assert_eq!(
            by_code("GM0820").map(|m| m.name.as_str()),
            Some("Nuenen, Gerwen en Nederwetten")
        );
    }

    #[test]
    fn codes_in_every_common_form() {
        for form in ["GM0484", "gm0484", "0484", "484", " GM0484 "] {
            assert_eq!(
                by_code(form).map(|m| m.code.as_str()),
                Some("GM0484"),
                "{form}"
            );
        }
        assert_eq!(by_code("GM9999"), None);
        assert_eq!(normalise_code("GM04840"), None);
        assert_eq!(normalise_code("Alphen"), None);
        assert_eq!(normalise_code(""), None);
    }

    #[test]
    fn names_tolerate_case_spaces_accents_and_variants() {
        let code = |n: &str| by_name(n).map(|m| m.code.as_str());
        assert_eq!(code("Alphen aan den Rijn"), Some("GM0484"));
        assert_eq!(code("  ALPHEN AAN DEN  RIJN "), Some("GM0484"));
        assert_eq!(code("Alphen a/d Rijn"), None);
        assert_eq!(code("Gemeente Enschede"), Some("GM0153"));
        assert_eq!(code("Den Haag"), Some("GM0518"));
        assert_eq!(code("'s-Gravenhage"), Some("GM0518"));
        assert_eq!(code("s Gravenhage"), Some("GM0518"));
        assert_eq!(code("Den Bosch"), Some("GM0796"));
        assert_eq!(code("Sudwest-Fryslan"), Some("GM1900"));
        assert_eq!(code("Súdwest-Fryslân"), Some("GM1900"));
        assert_eq!(code("Bergen (NH)"), Some("GM0373"));
        assert_eq!(code("Bergen (L.)"), Some("GM0893"));
        assert_eq!(code("Hengelo (O)"), Some("GM0164"));
        assert_eq!(code("Boskoop"), None);
        assert_eq!(code(""), None);
    }
}
