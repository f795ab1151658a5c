//! Dutch postcodes: `1234 AB` (PC6), of which the four digits are the PC4.

/// A parsed postcode: always a PC4, a PC6 when the letters were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postcode {
    pc4: u16,
    letters: Option<[u8; 2]>,
}

impl Postcode {
    /// Parses `1234 AB`, `1234AB`, `1234ab` or `1234`. The first digit is never 0.
    pub fn parse(text: &str) -> Option<Self> {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let (digits, rest) = compact.split_at_checked(4)?;
        if digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let pc4 = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let letters = match rest {
            [] => None,
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => return None,
        };
        Some(Self { pc4, letters })
    }

    pub fn pc4(&self) -> u16 {
        self.pc4
    }

    /// `1234AB`, when the letters are known.
    pub fn pc6(&self) -> Option<String> {
        self.letters
            .map(|[a, b]| format!("{}{}{}", self.pc4, char::from(a), char::from(b)))
    }
}

/// An inclusive PC4 range as listed on a HealthcareService: `2770-2779` or `2771`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pc4Range {
    pub from: u16,
    pub to: u16,
}

impl Pc4Range {
    pub fn parse(text: &str) -> Option<Self> {
        let pc4 = |t: &str| {
            let t = t.trim();
            (t.len() == 4)
                .then(|| Postcode::parse(t))
                .flatten()
                .map(|p| p.pc4)
        };
        let (from, to) = match text.split_once('-') {
            Some((a, b)) => (pc4(a)?, pc4(b)?),
            None => (pc4(text)?, pc4(text)?),
        };
        (from <= to).then_some(Self { from, to })
    }

    pub fn contains(&self, pc4: u16) -> bool {
        (self.from..=self.to).contains(&pc4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes() {
        let p = Postcode::parse("2771 ab").unwrap();
        assert_eq!((p.pc4(), p.pc6().as_deref()), (2771, Some("2771AB")));
        assert_eq!(Postcode::parse("2771AB"), Some(p));
        assert_eq!(
            Postcode::parse("7511").map(|p| (p.pc4(), p.pc6())),
            Some((7511, None))
        );
        for bad in [
            "", "0123 AB", "277 AB", "2771 A", "2771 ABC", "27a1", "2771 1B",
        ] {
            assert_eq!(Postcode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let r = Pc4Range::parse("2770-2779").unwrap();
        assert!(r.contains(2770) && r.contains(2779) && !r.contains(2780));
        assert_eq!(
            Pc4Range::parse("2771"),
            Some(Pc4Range {
                from: 2771,
                to: 2771
            })
        );
        for bad in ["2779-2770", "277", "2771AB", "2770-", "x"] {
            assert_eq!(Pc4Range::parse(bad), None, "{bad}");
        }
    }
}
