//! The FHIRPath subset FHIRPath Patch paths use here, evaluated to locations in the
//! resource's JSON (a FHIRPath engine answers values; a patch needs to know where they
//! are, so no FHIRPath crate fits).
//!
//! Supported: element names from the resource type (`Task.status`, `Task.output.type`,
//! choice elements by their FHIRPath name `Observation.value`), the indexer `[n]`,
//! `first()`, `last()`, `extension('url')` and `where(a.b = 'text' and c = true)` with
//! equality of an element path and a string, number or boolean literal. Anything else
//! is refused with a message naming it.

use serde_json::Value;

use super::schema;

/// A literal in a `where()` comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
}

/// `path = literal` inside `where()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub path: Vec<String>,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Child(String),
    Index(usize),
    First,
    Last,
    Where(Vec<Comparison>),
}

/// A parsed path: the steps after the resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub steps: Vec<Step>,
}

/// One step of a location in the JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// An element the path selects: where it is, its type, and the FHIRPath name it was
/// reached by when that is a choice (`value` for `valueQuantity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub loc: Vec<Seg>,
    pub ty: Option<String>,
    pub choice: Option<String>,
}

/// Longest path accepted (a path names elements; it is never long).
const MAX_LEN: usize = 1_000;

impl Path {
    /// Parses `text`, which must start at `resource_type` (or at one of its elements).
    pub fn parse(text: &str, resource_type: &str) -> Result<Self, String> {
        if text.len() > MAX_LEN {
            return Err(format!("the path is longer than {MAX_LEN} characters"));
        }
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        let mut steps = Vec::new();
        p.skip_ws();
        let first = p.identifier()?;
        if p.peek() == Some('(') {
            steps.extend(p.function(&first)?);
        } else if first != resource_type {
            if first.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(format!(
                    "the path must start at {resource_type}, not at '{}'",
                    echo(&first)
                ));
            }
            steps.push(Step::Child(first));
        }
        loop {
            p.skip_ws();
            match p.next() {
                None => break,
                Some('.') => {
                    p.skip_ws();
                    let name = p.identifier()?;
                    if p.peek() == Some('(') {
                        steps.extend(p.function(&name)?);
                    } else {
                        steps.push(Step::Child(name));
                    }
                }
                Some('[') => {
                    p.skip_ws();
                    let index = p.integer()?;
                    p.skip_ws();
                    p.expect(']')?;
                    steps.push(Step::Index(index));
                }
                Some(c) => return Err(p.unexpected(c)),
            }
        }
        Ok(Self { steps })
    }

    /// The path without its last step when that is an element name: the container and
    /// the element (`Task.note` -> (`Task`, `note`)), for insert and move.
    pub fn split_last_child(&self) -> Option<(&[Step], &str)> {
        match self.steps.split_last() {
            Some((Step::Child(name), rest)) => Some((rest, name.as_str())),
            _ => None,
        }
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, c: char) -> String {
        format!("unexpected '{c}' at position {}", self.pos)
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.next() {
            Some(c) if c == want => Ok(()),
            Some(c) => {
                self.pos -= 1;
                Err(format!(
                    "expected '{want}' but found '{c}' at position {}",
                    self.pos
                ))
            }
            None => Err(format!("expected '{want}' but the path ends")),
        }
    }

    fn identifier(&mut self) -> Result<String, String> {
        if self.peek() == Some('`') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|c| c != '`') {
                self.pos += 1;
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.expect('`')?;
            return Ok(name);
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        match name.chars().next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(name),
            _ => match self.peek() {
                Some(c) => Err(format!("expected an element name; {}", self.unexpected(c))),
                None => Err("expected an element name but the path ends".into()),
            },
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits
            .parse()
            .map_err(|_| format!("expected an index (0, 1, ...) at position {start}"))
    }

    fn function(&mut self, name: &str) -> Result<Vec<Step>, String> {
        self.expect('(')?;
        self.skip_ws();
        let steps = match name {
            "first" => vec![Step::First],
            "last" => vec![Step::Last],
            "where" => vec![Step::Where(self.criteria()?)],
            "extension" => match self.literal()? {
                Literal::String(url) => vec![
                    Step::Child("extension".into()),
                    Step::Where(vec![Comparison {
                        path: vec!["url".into()],
                        value: Literal::String(url),
                    }]),
                ],
                _ => return Err("extension() takes the extension's url as a string".into()),
            },
            "resolve" => {
                return Err(
                    "resolve() is not allowed: a patch changes only the resource it is sent to"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "the function {}() is not supported here (supported: where, first, last, extension)",
                    echo(other)
                ))
            }
        };
        self.skip_ws();
        self.expect(')')?;
        Ok(steps)
    }

    fn criteria(&mut self) -> Result<Vec<Comparison>, String> {
        let mut all = vec![self.comparison()?];
        loop {
            self.skip_ws();
            let save = self.pos;
            match self.identifier() {
                Ok(word) if word == "and" => {
                    self.skip_ws();
                    all.push(self.comparison()?);
                }
                _ => {
                    self.pos = save;
                    return Ok(all);
                }
            }
        }
    }

    fn comparison(&mut self) -> Result<Comparison, String> {
        let mut path = vec![self.identifier()?];
        loop {
            self.skip_ws();
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    self.skip_ws();
                    path.push(self.identifier()?);
                }
                Some('=') => {
                    self.pos += 1;
                    break;
                }
                Some('(') => {
                    return Err(format!(
                        "functions are not supported inside where() (at position {})",
                        self.pos
                    ))
                }
                Some(c) => {
                    return Err(format!(
                        "where() supports comparisons `element = literal` joined by `and`; {}",
                        self.unexpected(c)
                    ))
                }
                None => return Err("the path ends inside where()".into()),
            }
        }
        self.skip_ws();
        Ok(Comparison {
            path,
            value: self.literal()?,
        })
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.peek() {
            Some('\'') => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.next() {
                        None => return Err("a string literal is not closed".into()),
                        Some('\'') => return Ok(Literal::String(text)),
                        Some('\\') => match self.next() {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some('r') => text.push('\r'),
                            Some(c) => text.push(c),
                            None => return Err("a string literal is not closed".into()),
                        },
                        Some(c) => text.push(c),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                text.parse()
                    .map(Literal::Number)
                    .map_err(|_| format!("'{}' is not a number", echo(&text)))
            }
            _ => match self.identifier()?.as_str() {
                "true" => Ok(Literal::Bool(true)),
                "false" => Ok(Literal::Bool(false)),
                other => Err(format!(
                    "expected a literal ('text', a number, true or false), found '{}'",
                    echo(other)
                )),
            },
        }
    }
}

fn echo(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The value at `loc`.
pub fn get<'a>(doc: &'a Value, loc: &[Seg]) -> Option<&'a Value> {
    loc.iter().try_fold(doc, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}

pub fn get_mut<'a>(doc: &'a mut Value, loc: &[Seg]) -> Option<&'a mut Value> {
    loc.iter().try_fold(doc, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k),
        Seg::Index(i) => v.get_mut(i),
    })
}

/// The elements `steps` select in `doc`, a resource of `resource_type`, in document order.
pub fn evaluate(doc: &Value, resource_type: &str, steps: &[Step]) -> Vec<Node> {
    let root = Node {
        loc: Vec::new(),
        ty: Some(resource_type.to_owned()),
        choice: None,
    };
    steps.iter().fold(vec![root], |nodes, step| match step {
        Step::Child(name) => nodes.iter().flat_map(|n| children(doc, n, name)).collect(),
        Step::Index(i) => nodes.into_iter().nth(*i).into_iter().collect(),
        Step::First => nodes.into_iter().take(1).collect(),
        Step::Last => nodes.into_iter().last().into_iter().collect(),
        Step::Where(criteria) => nodes
            .into_iter()
            .filter(|n| criteria.iter().all(|c| holds(doc, n, c)))
            .collect(),
    })
}

/// The element `name` of the node: one node per item when it repeats.
fn children(doc: &Value, node: &Node, name: &str) -> Vec<Node> {
    let Some(Value::Object(object)) = get(doc, &node.loc) else {
        return Vec::new();
    };
    let found = node.ty.as_deref().and_then(|ty| {
        schema::lookup(ty, name, None)
            .filter(|e| object.contains_key(&e.key))
            .or_else(|| schema::present_choice(ty, name, object))
    });
    let (key, ty) = match found {
        Some(e) => (e.key, e.ty),
        None if object.contains_key(name) && !name.starts_with('_') => (name.to_owned(), None),
        None => return Vec::new(),
    };
    let choice = (key != name).then(|| name.to_owned());
    let type_of = |item: &Value| match ty.as_deref() {
        // A contained resource has the type it says.
        Some("ResourceList") => item
            .get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => ty.clone(),
    };
    let mut base = node.loc.clone();
    base.push(Seg::Key(key.clone()));
    match object.get(&key) {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut loc = base.clone();
                loc.push(Seg::Index(i));
                Node {
                    loc,
                    ty: type_of(item),
                    choice: choice.clone(),
                }
            })
            .collect(),
        Some(item) => vec![Node {
            loc: base,
            ty: type_of(item),
            choice,
        }],
        None => Vec::new(),
    }
}

/// FHIRPath equality of a singleton and a literal; an empty or longer collection is
/// not equal.
fn holds(doc: &Value, node: &Node, c: &Comparison) -> bool {
    let mut nodes = vec![node.clone()];
    for name in &c.path {
        nodes = nodes.iter().flat_map(|n| children(doc, n, name)).collect();
    }
    let [only] = nodes.as_slice() else {
        return false;
    };
    match (get(doc, &only.loc), &c.value) {
        (Some(Value::String(s)), Literal::String(want)) => s == want,
        (Some(Value::Bool(b)), Literal::Bool(want)) => b == want,
        (Some(Value::Number(n)), Literal::Number(want)) => {
            n.as_f64().is_some_and(|n| (n - want).abs() < f64::EPSILON)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task() -> Value {
        json!({
            "resourceType": "Task",
            "status": "requested",
            "extension": [{"url": "a", "valueString": "x"}, {"url": "b", "valueInteger": 2}],
            "note": [{"text": "one"}, {"text": "two"}],
            "output": [
                {"type": {"coding": [{"code": "feedback"}]}, "valueString": "ok"},
                {"type": {"coding": [{"code": "intake"}]}, "valueReference": {"reference": "Q/1"}}
            ]
        })
    }

    fn locs(expr: &str) -> Vec<Vec<Seg>> {
        let path = Path::parse(expr, "Task").unwrap();
        evaluate(&task(), "Task", &path.steps)
            .into_iter()
            .map(|n| n.loc)
            .collect()
    }

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn navigates_elements_indexes_and_functions() {
        assert_eq!(locs("Task"), vec![vec![]]);
        assert_eq!(locs("Task.status"), vec![vec![key("status")]]);
        assert_eq!(locs("status"), vec![vec![key("status")]]);
        assert_eq!(locs("Task.note").len(), 2);
        assert_eq!(locs("Task.note[1]"), vec![vec![key("note"), Seg::Index(1)]]);
        assert_eq!(locs("Task.note.last()"), locs("Task.note[1]"));
        assert_eq!(
            locs("Task.note.first().text"),
            vec![vec![key("note"), Seg::Index(0), key("text")]]
        );
        assert_eq!(locs("Task.note[2]"), Vec::<Vec<Seg>>::new());
        assert_eq!(
            locs("Task.output.where(type.coding.code = 'intake')"),
            vec![vec![key("output"), Seg::Index(1)]]
        );
        assert_eq!(
            locs("Task.output.value"),
            vec![
                vec![key("output"), Seg::Index(0), key("valueString")],
                vec![key("output"), Seg::Index(1), key("valueReference")]
            ]
        );
        assert_eq!(
            locs("Task.extension('b')"),
            vec![vec![key("extension"), Seg::Index(1)]]
        );
        assert_eq!(
            locs("Task.extension.where(url='b' and value = 2)"),
            locs("Task.extension('b')")
        );
        assert_eq!(locs("Task.extension.where(url='b' and value = 3)").len(), 0);
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for (expr, hint) in [
            ("Patient.name", "must start at Task"),
            ("Task.focus.resolve().status", "resolve()"),
            ("Task.note.exists()", "exists()"),
            ("Task.note[", "index"),
            ("Task.note[0", "expected ']'"),
            ("Task..status", "element name"),
            ("Task.output.where(type.coding.code != 'x')", "where()"),
            ("Task.where(status = 'a' or status = 'b')", "expected ')'"),
            ("Task.status | Task.intent", "unexpected '|'"),
        ] {
            let err = Path::parse(expr, "Task").unwrap_err();
            assert!(err.contains(hint), "{expr}: {err}");
        }
    }
}
