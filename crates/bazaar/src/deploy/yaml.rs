//! A small tree of YAML values and the writer of the generated files.
//!
//! The generators build [`Value`]s in the order a person reads them
//! (`apiVersion`, `kind`, `metadata`, `spec`) and this module writes them as
//! block-style YAML that passes yamllint, or as JSON (Grafana's dashboards,
//! through serde_json: [`Value`] serializes its maps in insertion order).
//! Its own YAML writer rather than a serde format keeps the output
//! byte-stable: the committed files are compared with a fresh generation in
//! a test, so the output may depend on nothing but the registry.

use std::fmt::Write as _;

/// A YAML (or JSON) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string; written plain when that is unambiguous, else double-quoted.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping, in insertion order.
    Map(Map),
}

/// A mapping that keeps its keys in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Map(pub Vec<(String, Value)>);

impl Map {
    /// Appends `key: value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Self::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value at `path` through nested mappings.
    pub fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter()
            .try_fold(self, |value, key| value.as_map()?.get(key))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Self::Str(s.clone())
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Self::Int(n.into())
    }
}
impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Self::Int(n.into())
    }
}
impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Self::Int(n.into())
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Self::Map(m)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Self::Seq(items.into_iter().map(Into::into).collect())
    }
}

/// A [`Value::Map`] from `key => value` pairs, in order.
macro_rules! map {
    ($($key:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut map = $crate::deploy::yaml::Map::default();
        $( map.push($key, $value); )*
        $crate::deploy::yaml::Value::Map(map)
    }};
}
pub(crate) use map;

/// A [`Value::Seq`] of the given items.
macro_rules! seq {
    ($($item:expr),* $(,)?) => {
        $crate::deploy::yaml::Value::Seq(vec![$($crate::deploy::yaml::Value::from($item)),*])
    };
}
pub(crate) use seq;

/// A YAML file: `header` as comment lines, then each document after `---`.
pub fn file(header: &str, documents: &[Value]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    for doc in documents {
        out.push_str("---\n");
        match doc {
            Value::Map(m) if !m.is_empty() => write_map(&mut out, m, 0, false),
            Value::Seq(s) if !s.is_empty() => write_seq(&mut out, s, 0),
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a non-empty mapping at `level`; with `continued`, its first key
/// goes on the current line (after a sequence's `- `).
fn write_map(out: &mut String, map: &Map, level: usize, continued: bool) {
    for (i, (key, value)) in map.0.iter().enumerate() {
        if i > 0 || !continued {
            indent(out, level);
        }
        out.push_str(&scalar(key));
        out.push(':');
        write_after_key(out, value, level);
    }
}

/// How long a line with a flow sequence may get before it is written as a
/// block instead.
const FLOW_WIDTH: usize = 100;

/// Whether `items` read best on one line: scalars that fit.
fn flow(items: &[Value], column: usize) -> bool {
    items.iter().all(|v| {
        matches!(v, Value::Str(s) if !s.contains('\n'))
            || matches!(v, Value::Int(_) | Value::Bool(_))
    }) && column + inline(&Value::Seq(items.to_vec())).len() <= FLOW_WIDTH
}

/// Writes the value of a key at `level`, starting right after its colon.
fn write_after_key(out: &mut String, value: &Value, level: usize) {
    let column = out.len() - out.rfind('\n').map_or(0, |i| i + 1);
    match value {
        Value::Map(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, level + 2, false);
        }
        Value::Seq(s) if !s.is_empty() && !flow(s, column + 1) => {
            out.push('\n');
            write_seq(out, s, level + 2);
        }
        Value::Str(s) if literal_block(s) => write_literal(out, s, level + 2),
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Value::Map(m) if !m.is_empty() => {
                out.push(' ');
                write_map(out, m, level + 2, true);
            }
            Value::Str(s) if literal_block(s) => write_literal(out, s, level + 2),
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// Whether a string is best written as a `|` block: several lines that a
/// literal block reproduces exactly.
fn literal_block(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && !s.contains('\t')
        && !s.contains('\r')
        && s.lines().all(|l| l == l.trim_end())
}

fn write_literal(out: &mut String, s: &str, level: usize) {
    out.push_str(if s.ends_with('\n') { " |\n" } else { " |-\n" });
    for line in s.lines() {
        if !line.is_empty() {
            indent(out, level);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// A value on one line: scalars, and empty or nested collections in flow
/// style (JSON, which YAML reads as flow collections).
fn inline(value: &Value) -> String {
    match value {
        Value::Str(s) => scalar(s),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Map(m) if m.is_empty() => "{}".to_owned(),
        Value::Seq(s) if s.is_empty() => "[]".to_owned(),
        other => {
            let mut out = String::new();
            write_flow(&mut out, other);
            out
        }
    }
}

/// A string as a YAML scalar: plain when nothing could read it as another
/// type or as syntax (YAML 1.1 readers included), else double-quoted.
fn scalar(s: &str) -> String {
    if plain(s) { s.to_owned() } else { quote(s) }
}

fn plain(s: &str) -> bool {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:@=,+".contains(c))
        && !s.ends_with(':')
        && !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A JSON string literal, which is also a YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` as pretty JSON (two spaces), keys in their order, with a final
/// newline.
pub fn json(value: &Value) -> String {
    // Only strings, integers, booleans and ordered maps: nothing that can
    // fail to serialize.
    let mut out = serde_json::to_string_pretty(value).expect("a tree of plain values");
    out.push('\n');
    out
}

/// As JSON, maps in their insertion order.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            Self::Str(s) => serializer.serialize_str(s),
            Self::Int(n) => serializer.serialize_i64(*n),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Seq(items) => serializer.collect_seq(items),
            Self::Map(m) => {
                let mut map = serializer.serialize_map(Some(m.0.len()))?;
                for (k, v) in &m.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A collection in YAML flow style on one line (JSON with `, ` and `: `),
/// its strings quoted as YAML scalars (which escape what YAML may not hold
/// raw, like DEL, where JSON would not).
fn write_flow(out: &mut String, value: &Value) {
    match value {
        Value::Str(s) => out.push_str(&quote(s)),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Seq(s) => {
            out.push('[');
            for (i, v) in s.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(out, v);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.0.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(k));
                out.push_str(": ");
                write_flow(out, v);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_style_with_indented_sequences() {
        let doc = map! {
            "apiVersion" => "v1",
            "kind" => "ConfigMap",
            "metadata" => map! { "name" => "x", "labels" => map! {} },
            "spec" => map! {
                "containers" => seq![
                    map! { "name" => "a", "args" => seq!["serve", "catalog"], "ports" => seq![] },
                    "plain",
                ],
                "replicas" => 2,
                "on" => true,
            },
        };
        assert_eq!(
            file("Generated.\n\nHello", &[doc]),
            "# Generated.\n#\n# Hello\n---\n\
             apiVersion: v1\n\
             kind: ConfigMap\n\
             metadata:\n  name: x\n  labels: {}\n\
             spec:\n  containers:\n    - name: a\n      args: [\"serve\", \"catalog\"]\n      ports: []\n    - plain\n  replicas: 2\n  \"on\": true\n"
        );
    }

    #[test]
    fn long_sequences_of_scalars_are_blocks() {
        let long = "x".repeat(50);
        let doc = map! { "short" => seq!["a", 1], "long" => seq![long.as_str(), long.as_str()] };
        assert_eq!(
            file("", &[doc]),
            format!("---\nshort: [\"a\", 1]\nlong:\n  - {long}\n  - {long}\n")
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "",
            "yes",
            "No",
            "on",
            "null",
            "10",
            "0.0.0.0:80",
            "1e3",
            "a: b",
            "a #b",
            "-x",
            "*x",
            "x:",
            "two words",
            "\"",
            "${X:?set it}",
        ] {
            assert!(scalar(s).starts_with('"'), "{s:?} must be quoted");
        }
        for s in [
            "catalog",
            "http://catalog:7102,http://catalog-1:7102",
            "app.kubernetes.io/name",
            "/healthz",
            "BAZAAR_UPSTREAM_CATALOG",
            "nats://nats:4222",
        ] {
            assert_eq!(scalar(s), s);
        }
        assert_eq!(scalar("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let doc = map! { "sql" => "a\n\nb\n", "raw" => "x\ny", "odd" => " lead\n" };
        assert_eq!(
            file("", &[doc]),
            "---\nsql: |\n  a\n\n  b\nraw: |-\n  x\n  y\nodd: \" lead\\n\"\n"
        );
    }

    #[test]
    fn json_keeps_key_order() {
        let v = map! { "z" => 1, "a" => seq![map! { "q" => "x\"" }], "e" => map! {} };
        assert_eq!(
            json(&v),
            "{\n  \"z\": 1,\n  \"a\": [\n    {\n      \"q\": \"x\\\"\"\n    }\n  ],\n  \"e\": {}\n}\n"
        );
    }

    #[test]
    fn paths_reach_nested_values() {
        let v = map! { "a" => map! { "b" => "c" } };
        assert_eq!(v.at(&["a", "b"]).and_then(Value::as_str), Some("c"));
        assert!(v.at(&["a", "x"]).is_none());
    }
}
