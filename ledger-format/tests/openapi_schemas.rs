//! docs/openapi.json's entry schemas against the validators the server runs, so that the
//! document and the code cannot drift apart: every kind's example submission is walked field
//! by field, mutated, and each mutation must get the same verdict from the schema and from the
//! server's own parsing (`parse_submissions`, then `Body::parse`), a refusal naming the field
//! the mutation touched as the server names it (`body.datasets[0].sha256`).
//!
//! The mutations, at every field of every example (nested objects and list items included):
//!
//! - each required field removed: refused, naming it; each optional one removed: accepted (so
//!   an example shows every field its schema lists);
//! - an unknown field added: refused, naming it, where `additionalProperties` is false;
//! - a string at `maxLength` accepted, one character longer refused; a list at `maxItems`, a
//!   map at `maxProperties` accepted, one more refused; an integer at `minimum` and `maximum`
//!   accepted, one beyond refused; every `enum` value accepted; a property name at the
//!   `propertyNames` limit accepted, one longer refused;
//! - probes whose verdict the schema decides: a value of every JSON type, the empty string,
//!   case changed, a character more or less, a character replaced (which catches a pattern
//!   looser or stricter than the server's check), the fields of the other forms of a body that
//!   has several (an approval's signature, its import evidence).
//!
//! A small evaluator of the JSON Schema keywords the document uses gives the schema's verdict;
//! a keyword it does not know fails the test rather than being ignored. The rules the schema can
//! only state in words are checked in [`rules_the_schemas_state_in_words`]. Two refusals name
//! their field less directly, and [`names`] says which. docs/ENTRIES.md, the prose form, is
//! held to the same schema: it names every field, and its examples are accepted.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ledger_format::entry::{parse_submissions, Body, EntryKind, SchemaError};
use regex::Regex;
use serde_json::{json, Map, Value};

/// The keywords the evaluator applies, and the annotations it reads past.
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "const",
    "enum",
    "oneOf",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "required",
    "properties",
    "additionalProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    // Annotations: `format` names what the pattern approximates (`date-time`, `decimal`).
    "format",
    "discriminator",
    "description",
    "example",
    "title",
];

/// The OpenAPI document and an evaluator of the JSON Schema (2020-12) keywords it uses.
struct Doc {
    root: Value,
    regexes: RefCell<HashMap<String, Regex>>,
}

impl Doc {
    fn load() -> Doc {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let text = std::fs::read_to_string(path).expect("docs/openapi.json is readable");
        Doc {
            root: serde_json::from_str(&text).expect("docs/openapi.json is JSON"),
            regexes: RefCell::default(),
        }
    }

    fn schemas(&self) -> &Map<String, Value> {
        self.root["components"]["schemas"]
            .as_object()
            .expect("components.schemas is an object")
    }

    fn named(&self, name: &str) -> &Value {
        self.schemas()
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    /// Returns the schema of `POST /v1/entries`' request body.
    fn request_body(&self) -> &Value {
        &self.root["paths"]["/v1/entries"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]
    }

    /// Returns the schema a `$ref` names (its siblings are only descriptions, checked below).
    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unsupported $ref {r}"));
            s = self.named(name);
        }
        s
    }

    fn matches(&self, pattern: &str, s: &str) -> bool {
        let mut cache = self.regexes.borrow_mut();
        let re = cache.entry(pattern.to_owned()).or_insert_with(|| {
            Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
        });
        re.is_match(s)
    }

    /// Returns whether the schema `s` accepts `v`.
    fn valid(&self, s: &Value, v: &Value) -> bool {
        let s = self.resolve(s);
        let uint = |k: &str| s.get(k).and_then(Value::as_u64);
        if let Some(t) = s.get("type") {
            let ok = match t {
                Value::String(t) => type_is(t, v),
                Value::Array(ts) => ts.iter().any(|t| type_is(t.as_str().unwrap(), v)),
                _ => panic!("type {t}"),
            };
            if !ok {
                return false;
            }
        }
        if s.get("const").is_some_and(|c| c != v)
            || s.get("enum")
                .is_some_and(|e| !e.as_array().unwrap().contains(v))
        {
            return false;
        }
        if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
            if alts.iter().filter(|a| self.valid(a, v)).count() != 1 {
                return false;
            }
        }
        match v {
            Value::String(x) => {
                let n = x.chars().count() as u64;
                uint("minLength").is_none_or(|m| n >= m)
                    && uint("maxLength").is_none_or(|m| n <= m)
                    && s.get("pattern")
                        .and_then(Value::as_str)
                        .is_none_or(|p| self.matches(p, x))
            }
            Value::Number(x) => match int_of(v) {
                Some(n) => {
                    let bound = |k: &str| s.get(k).map(|b| int_of(b).expect("integer bounds"));
                    bound("minimum").is_none_or(|m| n >= m)
                        && bound("maximum").is_none_or(|m| n <= m)
                }
                None => {
                    let (f, bound) = (x.as_f64().unwrap(), |k: &str| s.get(k)?.as_f64());
                    bound("minimum").is_none_or(|m| f >= m)
                        && bound("maximum").is_none_or(|m| f <= m)
                }
            },
            Value::Array(items) => {
                let n = items.len() as u64;
                uint("minItems").is_none_or(|m| n >= m)
                    && uint("maxItems").is_none_or(|m| n <= m)
                    && s.get("items")
                        .is_none_or(|i| items.iter().all(|x| self.valid(i, x)))
            }
            Value::Object(m) => {
                let props = s.get("properties").and_then(Value::as_object);
                let n = m.len() as u64;
                let required = s.get("required").and_then(Value::as_array);
                uint("minProperties").is_none_or(|k| n >= k)
                    && uint("maxProperties").is_none_or(|k| n <= k)
                    && required
                        .into_iter()
                        .flatten()
                        .all(|r| m.contains_key(r.as_str().unwrap()))
                    && m.iter().all(|(k, x)| {
                        let names_ok = s
                            .get("propertyNames")
                            .is_none_or(|p| self.valid(p, &Value::String(k.clone())));
                        let value_ok = match props.and_then(|p| p.get(k)) {
                            Some(p) => self.valid(p, x),
                            None => match s.get("additionalProperties") {
                                None | Some(Value::Bool(true)) => true,
                                Some(Value::Bool(false)) => false,
                                Some(ap) => self.valid(ap, x),
                            },
                        };
                        names_ok && value_ok
                    })
            }
            _ => true,
        }
    }

    /// Returns the problems of every schema reachable from `s`: a keyword the evaluator does
    /// not know, or a `$ref` with more than a description beside it.
    fn keyword_problems(&self, s: &Value, at: &str, seen: &mut BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        let Some(m) = s.as_object() else {
            return vec![format!("{at}: a schema must be an object")];
        };
        if let Some(r) = m.get("$ref").and_then(Value::as_str) {
            if m.keys().any(|k| k != "$ref" && k != "description") {
                out.push(format!("{at}: beside $ref only a description is read"));
            }
            if seen.insert(r.to_owned()) {
                out.extend(self.keyword_problems(self.resolve(s), r, seen));
            }
            return out;
        }
        for (k, v) in m {
            if !KEYWORDS.contains(&k.as_str()) {
                out.push(format!(
                    "{at}: keyword {k} is unknown to this test's evaluator"
                ));
            }
            match k.as_str() {
                "items" | "additionalProperties" | "propertyNames" if v.is_object() => {
                    out.extend(self.keyword_problems(v, &format!("{at}/{k}"), seen));
                }
                "properties" => {
                    for (p, ps) in v.as_object().unwrap() {
                        out.extend(self.keyword_problems(ps, &format!("{at}/{p}"), seen));
                    }
                }
                "oneOf" => {
                    for (i, alt) in v.as_array().unwrap().iter().enumerate() {
                        out.extend(self.keyword_problems(alt, &format!("{at}/oneOf/{i}"), seen));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Returns each documented kind with its `*Submission` schema: the branches of
    /// `Submission`, each naming its kind with `const`.
    fn branches(&self) -> BTreeMap<String, &Value> {
        self.named("Submission")["oneOf"]
            .as_array()
            .expect("Submission is a oneOf")
            .iter()
            .map(|b| {
                let b = self.resolve(b);
                let kind = b["properties"]["kind"]["const"]
                    .as_str()
                    .expect("each branch names its kind with const");
                (kind.to_owned(), b)
            })
            .collect()
    }

    /// Returns every example submission: one per kind, and one per form of a body that has
    /// several (`oneOf`, each form with its example).
    fn example_submissions(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for branch in self.branches().values() {
            let body = self.resolve(&branch["properties"]["body"]);
            let bodies: Vec<&Value> = match body.get("oneOf").and_then(Value::as_array) {
                Some(forms) => forms.iter().map(|f| &self.resolve(f)["example"]).collect(),
                None => vec![&body["example"]],
            };
            for b in bodies {
                let mut sub = branch["example"].clone();
                sub["body"] = b.clone();
                out.push(sub);
            }
        }
        out
    }
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

fn type_is(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        // JSON Schema counts 4.0 as an integer, the server does not (the descriptions say so);
        // no probe writes one.
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("type {other} is unknown to this test's evaluator"),
    }
}

fn int_of(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

fn int_value(n: i128) -> Option<Value> {
    i64::try_from(n)
        .map(Value::from)
        .or_else(|_| u64::try_from(n).map(Value::from))
        .ok()
}

/// Returns the server's verdict on a request body: `parse_submissions`, then `Body::parse` of
/// each body (governance reads the typed body), with field paths from the top of the request.
fn server(request: &Value) -> Result<(), SchemaError> {
    let text = request.to_string();
    let (subs, batch) = parse_submissions(&text)?;
    for (i, s) in subs.iter().enumerate() {
        Body::parse(s.kind, s.body).map_err(|e| {
            let prefix = if batch {
                format!("entries[{i}].body")
            } else {
                "body".to_owned()
            };
            SchemaError {
                field: join(&prefix, &e.field),
                ..e
            }
        })?;
    }
    Ok(())
}

fn join(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Returns whether `e` names `blame` (or a field inside it, as a refused `{}` names the member
/// it lacks).
fn names(e: &SchemaError, blame: &str) -> bool {
    if e.field == blame
        || e.field.starts_with(&format!("{blame}."))
        || e.field.starts_with(&format!("{blame}["))
    {
        return true;
    }
    // The canonical-form check (integers within ±(2^53-1)) runs over a whole signed statement:
    // the error names the statement and puts the member in its message as `$.member`.
    if let Some((member, _)) = e.message.split_once(": ") {
        if let Some(rest) = member.strip_prefix('$') {
            if format!("{}{rest}", e.field) == blame {
                return true;
            }
        }
    }
    // A top-level field of the wrong JSON type is refused by serde, whose message names the
    // type it expected rather than the field.
    e.field.is_empty() && e.message.starts_with("invalid type") && !blame.contains(['.', '['])
}

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn show(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn node<'a>(v: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &v[k.as_str()],
        Seg::Index(i) => &v[*i],
    })
}

fn node_mut<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

fn child(path: &[Seg], s: Seg) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(s);
    p
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    child(path, Seg::Key(k.to_owned()))
}

/// What the walk knows a mutation's verdict must be, besides the server agreeing with the schema.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Accepted,
    Refused,
    /// A probe: the schema decides.
    Either,
}

struct Case {
    what: String,
    request: Value,
    /// The field a refusal must name.
    blame: String,
    /// False where a refusal may name another field (see the callers).
    exact: bool,
    expect: Expect,
}

/// Walks one example request, collecting mutations and the problems of the schema itself.
struct Walk<'d> {
    doc: &'d Doc,
    base: Value,
    cases: Vec<Case>,
    problems: Vec<String>,
}

impl<'d> Walk<'d> {
    fn new(doc: &'d Doc, base: Value) -> Walk<'d> {
        Walk {
            doc,
            base,
            cases: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn case(&mut self, what: impl Into<String>, blame: &[Seg], expect: Expect, request: Value) {
        self.cases.push(Case {
            what: what.into(),
            request,
            blame: show(blame),
            exact: true,
            expect,
        });
    }

    /// Adds the case of the base with the value at `path` replaced by `v`.
    fn set(&mut self, what: impl Into<String>, path: &[Seg], expect: Expect, v: Value) {
        let mut r = self.base.clone();
        *node_mut(&mut r, path) = v;
        self.case(what, path, expect, r);
    }

    fn problem(&mut self, path: &[Seg], what: impl std::fmt::Display) {
        self.problems.push(format!("{}: {what}", show(path)));
    }

    /// Collects the mutations of the value at `path`, which `schema` describes.
    fn visit(&mut self, schema: &'d Value, path: Vec<Seg>) {
        let s = self.doc.resolve(schema);
        if !path.is_empty() {
            if schema.get("description").is_none() && s.get("description").is_none() {
                self.problem(&path, "has no description");
            }
            for probe in [
                json!(null),
                json!(true),
                json!(1.5),
                json!("text"),
                json!(7),
            ] {
                self.set(format!("a {probe}"), &path, Expect::Either, probe);
            }
            self.set("an empty list", &path, Expect::Either, json!([]));
            self.set("an empty object", &path, Expect::Either, json!({}));
        }
        self.visit_form(s, path);
    }

    fn visit_form(&mut self, s: &'d Value, path: Vec<Seg>) {
        let v = node(&self.base, &path).clone();
        if let Some(forms) = s.get("oneOf").and_then(Value::as_array) {
            let fitting: Vec<&'d Value> = forms.iter().filter(|f| self.doc.valid(f, &v)).collect();
            let [form] = fitting[..] else {
                return self.problem(
                    &path,
                    format!("{} forms of oneOf fit the example", fitting.len()),
                );
            };
            self.other_forms_fields(forms, form, &path);
            return self.visit_form(self.doc.resolve(form), path);
        }
        match &v {
            Value::Object(m) => self.visit_object(s, m, &path),
            Value::Array(a) => self.visit_array(s, a, &path),
            Value::String(x) => self.visit_string(s, x, &path),
            Value::Number(_) => self.visit_integer(s, &v, &path),
            other => self.problem(&path, format!("the example holds {other}")),
        }
    }

    /// Adds to a body of one form each field that only its other forms have: the cross-field
    /// rules (an imported approval carries no signature, a signed one no evidence).
    fn other_forms_fields(&mut self, forms: &'d [Value], form: &'d Value, path: &[Seg]) {
        let props = |f: &'d Value| {
            self.doc
                .resolve(f)
                .get("properties")
                .and_then(Value::as_object)
        };
        let Some(mine) = props(form) else { return };
        let mut added = BTreeSet::new();
        for other in forms.iter().filter(|f| *f != form) {
            let example = &self.doc.resolve(other)["example"];
            for (p, ps) in props(other).into_iter().flatten() {
                // The discriminator (`source`) turns the body into the other form, whose
                // refusal names what that form misses instead.
                let discriminator = self.doc.resolve(ps).get("const").is_some();
                if mine.contains_key(p) || discriminator || !added.insert(p.clone()) {
                    continue;
                }
                let Some(x) = example.get(p) else { continue };
                let mut r = self.base.clone();
                node_mut(&mut r, path)[p.as_str()] = x.clone();
                self.case(
                    format!("{p} of another form added"),
                    &key(path, p),
                    Expect::Refused,
                    r,
                );
            }
        }
    }

    fn visit_object(&mut self, s: &'d Value, m: &Map<String, Value>, path: &[Seg]) {
        let props: &'d Map<String, Value> = match s.get("properties") {
            Some(p) => p.as_object().expect("properties is an object"),
            None => empty_map(),
        };
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| r.as_str().unwrap())
            .collect();
        for (p, ps) in props {
            let p = p.as_str();
            if !m.contains_key(p) {
                self.problem(&key(path, p), "the example leaves it out: show every field");
                continue;
            }
            let mut r = self.base.clone();
            node_mut(&mut r, path).as_object_mut().unwrap().remove(p);
            if required.contains(&p) {
                // Without its discriminator a body reads as another form, whose refusal names
                // what that form misses (an approval without `source` lacks `signature`).
                let exact = self.doc.resolve(ps).get("const").is_none();
                self.cases.push(Case {
                    what: "required field removed".into(),
                    request: r,
                    blame: show(&key(path, p)),
                    exact,
                    expect: Expect::Refused,
                });
            } else {
                self.case("optional field removed", &key(path, p), Expect::Accepted, r);
            }
        }
        for r in &required {
            if !props.contains_key(*r) {
                self.problem(path, format!("requires {r}, which it does not describe"));
            }
        }
        let extra = s.get("additionalProperties");
        if !props.is_empty() || extra.is_some() {
            let expect = if extra == Some(&Value::Bool(false)) {
                Expect::Refused
            } else {
                Expect::Either
            };
            let mut r = self.base.clone();
            node_mut(&mut r, path)["x_unknown_field"] = json!("x");
            self.case(
                "unknown field added",
                &key(path, "x_unknown_field"),
                expect,
                r,
            );
        }
        let map_values = extra.filter(|e| e.is_object());
        if props.is_empty() && extra.is_none() {
            // A free-form object: its members are the submitter's.
            return;
        }
        for (k, x) in m {
            match (props.get(k), map_values) {
                (Some(ps), _) => self.visit(ps, key(path, k)),
                (None, Some(values)) => self.visit(values, key(path, k)),
                (None, None) => self.problem(
                    &key(path, k),
                    format!("the example has it ({x}), the schema does not"),
                ),
            }
        }
        if map_values.is_some() {
            self.visit_map(s, m, path);
        }
    }

    /// The bounds of an object that maps names to values (`dependencies`, metrics).
    fn visit_map(&mut self, s: &'d Value, m: &Map<String, Value>, path: &[Seg]) {
        let Some(first) = m.values().next().cloned() else {
            return self.problem(path, "the example map is empty");
        };
        let Some(max) = s.get("maxProperties").and_then(Value::as_u64) else {
            return self.problem(path, "a map needs maxProperties");
        };
        let filled = |n: usize| {
            let mut m = m.clone();
            let mut i = 0;
            while m.len() < n {
                m.insert(format!("m{i}"), first.clone());
                i += 1;
            }
            Value::Object(m)
        };
        self.set(
            format!("{max} members"),
            path,
            Expect::Accepted,
            filled(max as usize),
        );
        self.set(
            format!("{} members", max + 1),
            path,
            Expect::Refused,
            filled(max as usize + 1),
        );
        let names = s.get("propertyNames");
        let Some(n) = names
            .and_then(|p| p.get("maxLength"))
            .and_then(Value::as_u64)
        else {
            return self.problem(path, "a map needs propertyNames.maxLength");
        };
        for (name, expect) in [
            ("k".repeat(n as usize), Expect::Accepted),
            ("k".repeat(n as usize + 1), Expect::Refused),
            (String::new(), Expect::Either),
        ] {
            let mut r = self.base.clone();
            node_mut(&mut r, path)[name.as_str()] = first.clone();
            let what = format!("a name of {} characters", name.len());
            self.case(what, &key(path, &name), expect, r);
        }
    }

    fn visit_array(&mut self, s: &'d Value, a: &[Value], path: &[Seg]) {
        let (Some(items), Some(first)) = (s.get("items"), a.first()) else {
            return self.problem(path, "a list needs items and an example item");
        };
        let Some(max) = s.get("maxItems").and_then(Value::as_u64) else {
            return self.problem(path, "a list needs maxItems");
        };
        let filled = |n: u64| Value::Array(vec![first.clone(); n as usize]);
        self.set(format!("{max} items"), path, Expect::Accepted, filled(max));
        self.set(
            format!("{} items", max + 1),
            path,
            Expect::Refused,
            filled(max + 1),
        );
        for i in 0..a.len() {
            self.visit(items, child(path, Seg::Index(i)));
        }
    }

    fn visit_string(&mut self, s: &'d Value, x: &str, path: &[Seg]) {
        if !x.is_ascii() {
            self.problem(path, "examples are ASCII");
        }
        let members: Vec<Value> = match (s.get("enum"), s.get("const")) {
            (Some(e), _) => e.as_array().unwrap().clone(),
            (None, Some(c)) => vec![c.clone()],
            (None, None) => vec![],
        };
        for m in &members {
            self.set(format!("{m}"), path, Expect::Accepted, m.clone());
        }
        let chars: Vec<char> = x.chars().collect();
        let n = chars.len();
        let replaced = |i: usize, c: char| {
            let mut c2 = chars.clone();
            c2[i] = c;
            c2.into_iter().collect::<String>()
        };
        let mut probes = vec![
            String::new(),
            x.to_uppercase(),
            x.to_lowercase(),
            format!("{x}g"),
            format!("{x} "),
            "not-a-value".to_owned(),
        ];
        if n > 0 {
            probes.push(chars[..n - 1].iter().collect());
            probes.push(replaced(0, '!'));
        }
        if n >= 3 {
            // Third from the end: a signature's last significant character, a time's seconds.
            probes.push(replaced(n - 3, 'B'));
            probes.push(replaced(n - 3, 'b'));
        }
        for p in probes.into_iter().filter(|p| p != x) {
            self.set(format!("{p:?}"), path, Expect::Either, Value::String(p));
        }
        if !members.is_empty() {
            return;
        }
        let Some(max) = s.get("maxLength").and_then(Value::as_u64) else {
            return self.problem(path, "a string needs maxLength or enum");
        };
        let max = max as usize;
        match self.stretch(s, x, max) {
            Some(at) => self.set(
                format!("{max} characters"),
                path,
                Expect::Accepted,
                json!(at),
            ),
            None => self.problem(
                path,
                format!("no value of {max} characters fits the pattern"),
            ),
        }
        let over = self
            .stretch(s, x, max + 1)
            .unwrap_or_else(|| format!("{x}{}", "a".repeat(max + 1 - n.min(max + 1))));
        self.set(
            format!("{} characters", max + 1),
            path,
            Expect::Refused,
            json!(over),
        );
    }

    /// Returns `x` lengthened to `len` characters in a way its pattern still matches, if
    /// there is one: digits added to a time's or a decimal's fraction, else its last
    /// character repeated.
    fn stretch(&self, s: &Value, x: &str, len: usize) -> Option<String> {
        let n = x.chars().count();
        let k = len.checked_sub(n)?;
        let mut candidates = Vec::new();
        match s.get("format").and_then(Value::as_str) {
            Some("date-time") if x.len() >= 20 => {
                let (date, rest) = x.split_at(19);
                candidates.push(match rest.strip_prefix('.') {
                    Some(frac) => format!("{date}.{}{frac}", "0".repeat(k)),
                    None if k > 0 => format!("{date}.{}{rest}", "0".repeat(k - 1)),
                    None => x.to_owned(),
                });
            }
            Some("decimal") => {
                let mut t = x.to_owned();
                if !t.starts_with('-') {
                    t.insert(0, '-');
                }
                if !t.contains('.') {
                    t.push_str(".0");
                }
                if t.len() <= len {
                    t.push_str(&"0".repeat(len - t.len()));
                    candidates.push(t);
                }
            }
            _ => {}
        }
        let last = x.chars().last().unwrap_or('a');
        candidates.push(format!("{x}{}", last.to_string().repeat(k)));
        let pattern = s.get("pattern").and_then(Value::as_str);
        candidates
            .into_iter()
            .find(|c| c.chars().count() == len && pattern.is_none_or(|p| self.doc.matches(p, c)))
    }

    fn visit_integer(&mut self, s: &'d Value, v: &Value, path: &[Seg]) {
        let bound = |k: &str| s.get(k).and_then(int_of);
        let (Some(min), Some(max)) = (bound("minimum"), bound("maximum")) else {
            return self.problem(path, "an integer needs minimum and maximum");
        };
        let n = int_of(v).expect("an integer example");
        for (x, expect) in [
            (min, Expect::Accepted),
            (max, Expect::Accepted),
            (min - 1, Expect::Refused),
            (max + 1, Expect::Refused),
            (-1, Expect::Either),
            (0, Expect::Either),
            (1, Expect::Either),
            (n + 1, Expect::Either),
        ] {
            if let Some(value) = int_value(x) {
                self.set(format!("{x}"), path, expect, value);
            }
        }
    }
}

/// Returns what is wrong with one case: the schema's verdict is not the one the walk expects,
/// the server's differs from the schema's, or its refusal names another field.
fn disagreement(doc: &Doc, root: &Value, c: &Case) -> Option<String> {
    let schema_ok = doc.valid(root, &c.request);
    let at = if c.blame.is_empty() {
        "the example"
    } else {
        &c.blame
    };
    match (c.expect, schema_ok) {
        (Expect::Accepted, false) => {
            return Some(format!(
                "{at} = {}: the schema refuses it, yet it should accept it",
                c.what
            ))
        }
        (Expect::Refused, true) => {
            return Some(format!(
                "{at} = {}: the schema accepts it, yet it should refuse it",
                c.what
            ))
        }
        _ => {}
    }
    match (schema_ok, server(&c.request)) {
        (true, Ok(())) => None,
        (true, Err(e)) => Some(format!(
            "{at} = {}: the schema accepts it, the server refuses it ({e})",
            c.what
        )),
        (false, Ok(())) => Some(format!(
            "{at} = {}: the schema refuses it, the server accepts it",
            c.what
        )),
        (false, Err(e)) if c.exact && !names(&e, &c.blame) => Some(format!(
            "{at} = {}: the server refuses it naming {:?} ({}), not {at}",
            c.what, e.field, e.message
        )),
        (false, Err(_)) => None,
    }
}

/// Every kind's schema agrees with the server on every mutation of its example (the module doc
/// lists them), and refusals name the field the server names.
#[test]
fn every_kind_schema_agrees_with_the_server_field_by_field() {
    let doc = Doc::load();
    let root = doc.request_body();
    let mut problems = Vec::new();
    let mut cases = 0;
    for example in doc.example_submissions() {
        let kind = example["kind"].as_str().unwrap_or("?").to_owned();
        let mut walk = Walk::new(&doc, example.clone());
        walk.case("the example", &[], Expect::Accepted, example);
        walk.visit(root, Vec::new());
        problems.extend(walk.problems.iter().map(|p| format!("{kind}: schema: {p}")));
        cases += walk.cases.len();
        for c in &walk.cases {
            problems.extend(disagreement(&doc, root, c).map(|d| format!("{kind}: {d}")));
        }
    }
    assert!(cases > 1000, "only {cases} cases");
    assert!(
        problems.is_empty(),
        "{} problems in {cases} cases:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every kind the server accepts from clients has a `Submission` branch with a body schema,
/// and every branch and every `*Body` schema names a real kind.
#[test]
fn every_submittable_kind_has_a_schema_and_every_schema_a_kind() {
    let doc = Doc::load();
    let branches = doc.branches();
    for kind in EntryKind::ALL {
        let request = json!({"kind": kind.name(), "body": {}});
        let refused_kind = server(&request).is_err_and(|e| e.field == "kind");
        assert_eq!(
            branches.contains_key(kind.name()),
            !refused_kind,
            "{}: documented iff clients may submit it",
            kind.name()
        );
    }
    let mut bodies = BTreeSet::new();
    for (kind, b) in &branches {
        assert!(
            EntryKind::from_name(kind).is_some(),
            "{kind} is no entry kind"
        );
        let body = b["properties"]["body"]["$ref"]
            .as_str()
            .expect("body is a $ref");
        bodies.insert(body.trim_start_matches("#/components/schemas/").to_owned());
        let mapping = &doc.named("Submission")["discriminator"]["mapping"][kind.as_str()];
        let name = format!("#/components/schemas/{}", title_case(kind));
        assert_eq!(mapping.as_str(), Some(format!("{name}Submission").as_str()));
        assert_eq!(body, format!("{name}Body"));
    }
    let named: BTreeSet<String> = doc
        .schemas()
        .keys()
        .filter(|n| n.ends_with("Body"))
        .cloned()
        .collect();
    assert_eq!(named, bodies, "every *Body schema is a kind's");
}

fn title_case(kind: &str) -> String {
    kind.split('_')
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

/// The schemas use only keywords the evaluator applies, every example in them is valid, and
/// the request body is a Submission or a Batch.
#[test]
fn the_schemas_use_only_keywords_this_test_evaluates() {
    let doc = Doc::load();
    let root = doc.request_body();
    let mut seen = BTreeSet::new();
    let problems = doc.keyword_problems(root, "requestBody", &mut seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let refs: Vec<&str> = root["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["$ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        [
            "#/components/schemas/Submission",
            "#/components/schemas/Batch"
        ]
    );
    for name in &seen {
        let reference = json!({ "$ref": name });
        let s = doc.resolve(&reference);
        if let Some(example) = s.get("example") {
            assert!(doc.valid(s, example), "{name}: its example is invalid");
        }
    }
}

/// A batch holds entries of every kind, and refuses as a whole naming the entry at fault.
#[test]
fn batches_of_every_kind() {
    let doc = Doc::load();
    let root = doc.request_body();
    let entries = doc.example_submissions();
    let batch = json!({ "entries": entries });
    assert!(doc.valid(root, &batch));
    server(&batch).unwrap();
    let mut bad = batch.clone();
    bad["entries"][2]["body"]["x_unknown_field"] = json!(1);
    assert!(!doc.valid(root, &bad));
    assert_eq!(
        server(&bad).unwrap_err().field,
        "entries[2].body.x_unknown_field"
    );
    for (bad, field) in [
        (json!({"entries": []}), "entries"),
        (json!({"entries": entries, "kind": "audit"}), "entries"),
    ] {
        assert!(!doc.valid(root, &bad), "{bad}");
        assert_eq!(server(&bad).unwrap_err().field, field);
    }
    // `maxItems` is the server's `max_batch_entries` (a setting, 1,000 by default), checked
    // after parsing: not a rule of the format, so not checked here.
}

/// The rules the descriptions state in words because JSON Schema cannot: each is the server's,
/// and the schema lets the value through.
#[test]
fn rules_the_schemas_state_in_words() {
    let doc = Doc::load();
    let root = doc.request_body();
    let examples = doc.example_submissions();
    let of = |kind: &str| examples.iter().find(|e| e["kind"] == kind).unwrap().clone();
    for (rule, kind, field, value) in [
        // Lengths are bytes; maxLength counts characters.
        (
            "bytes",
            "audit",
            "body.event_type",
            json!("\u{e9}".repeat(200)),
        ),
        // A day the month does not have.
        (
            "calendar",
            "approval_request",
            "body.statement.signed_at",
            json!("2026-04-31T09:00:00Z"),
        ),
        // Before the Unix epoch once the offset is applied.
        (
            "epoch",
            "approval_request",
            "body.statement.signed_at",
            json!("1970-01-01T00:30:00+01:00"),
        ),
        // A signed decimal of more than 40 digits.
        (
            "digits",
            "approval_request",
            "body.statement.performance_metrics.sharpe",
            json!("1".repeat(41)),
        ),
    ] {
        let mut request = of(kind);
        let path: Vec<Seg> = field.split('.').map(|k| Seg::Key(k.to_owned())).collect();
        *node_mut(&mut request, &path) = value;
        assert!(doc.valid(root, &request), "{rule}: the schema refuses it");
        let e = server(&request).expect_err(rule);
        assert_eq!(e.field, field, "{rule}: {e}");
    }
    // An integer written with a fraction: JSON Schema's `integer` takes 412.0, the server not.
    let mut request = of("approval_request");
    request["body"]["statement"]["github"]["pr"] = json!(412.0);
    assert_eq!(
        server(&request).unwrap_err().field,
        "body.statement.github.pr"
    );
}

/// Returns the path of every field the schema `s` describes, lists written `[]`
/// (`datasets[].sha256`), the fields of every form of a `oneOf`.
fn field_paths(doc: &Doc, s: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let s = doc.resolve(s);
    for form in s
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        field_paths(doc, form, prefix, out);
    }
    for (p, ps) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = format!("{prefix}{p}");
        let ps = doc.resolve(ps);
        field_paths(doc, ps, &format!("{path}."), out);
        if let Some(items) = ps.get("items") {
            field_paths(doc, items, &format!("{path}[]."), out);
        }
        out.insert(path);
    }
}

/// docs/ENTRIES.md, the prose form of these schemas, names every field of every body, and
/// each JSON example in it is accepted by the schema and the server: a request as it is, a
/// body as the body of its kind.
#[test]
fn entries_md_names_every_field_and_its_examples_are_accepted() {
    let doc = Doc::load();
    let root = doc.request_body();
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ENTRIES.md"))
        .expect("docs/ENTRIES.md is readable");
    let branches = doc.branches();
    for (kind, branch) in &branches {
        let mut paths = BTreeSet::new();
        field_paths(&doc, &branch["properties"]["body"], "", &mut paths);
        for p in paths {
            assert!(
                md.contains(&format!("`{p}`")),
                "ENTRIES.md: {kind}: no `{p}`"
            );
        }
    }
    let mut examples = 0;
    for block in md.split("```json\n").skip(1) {
        let text = block.split("```").next().unwrap();
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let accepted_as = |request: &Value| doc.valid(root, request) && server(request).is_ok();
        let ok = if v.get("kind").is_some() || v.get("entries").is_some() {
            accepted_as(&v)
        } else {
            branches
                .keys()
                .any(|kind| accepted_as(&json!({"kind": kind, "body": v})))
        };
        assert!(ok, "ENTRIES.md: an example is refused:\n{text}");
        examples += 1;
    }
    assert!(examples >= 8, "{examples} examples");
}
