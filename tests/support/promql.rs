//! A small PromQL reader: the metric names, label matchers and grouping clauses a query
//! uses.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num,
    /// A `[…]` range or subquery, skipped whole.
    Range,
    /// `$name` or `${name}`.
    Var,
    Punct(&'static str),
}

fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in {expr:?}")),
                    Some('\\') if quote != '`' => {
                        if let Some(n) = chars.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some(&ch) if ch == quote => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            if i == chars.len() {
                return Err(format!("unterminated [ in {expr:?}"));
            }
            i += 1;
            out.push(Tok::Range);
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            out.push(Tok::Var);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let exponent_sign = (d == '+' || d == '-') && matches!(chars[i - 1], 'e' | 'E');
                if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Tok::Num);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let p = match two.as_str() {
                "=~" => Some("=~"),
                "!~" => Some("!~"),
                "!=" => Some("!="),
                "==" => Some("=="),
                ">=" => Some(">="),
                "<=" => Some("<="),
                _ => None,
            };
            if let Some(p) = p {
                out.push(Tok::Punct(p));
                i += 2;
                continue;
            }
            let p = match c {
                '(' => "(",
                ')' => ")",
                '{' => "{",
                '}' => "}",
                ',' => ",",
                '=' => "=",
                '+' => "+",
                '-' => "-",
                '*' => "*",
                '/' => "/",
                '%' => "%",
                '^' => "^",
                '<' => "<",
                '>' => ">",
                '@' => "@",
                _ => return Err(format!("unexpected {c:?} in {expr:?}")),
            };
            out.push(Tok::Punct(p));
            i += 1;
        }
    }
    Ok(out)
}

/// Words that are neither metrics nor functions.
const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
];

/// A label matcher inside `{…}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    /// The label.
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    /// The value (a Grafana variable stays as written).
    pub value: String,
}

/// A metric reference in a query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRef {
    /// The series name as written (e.g. `…_bucket`).
    pub name: String,
    /// Its `{…}` matchers.
    pub matchers: Vec<Matcher>,
}

/// A `by`/`without`/`on`/`ignoring`/`group_*` clause and the metrics it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// The keyword.
    pub keyword: String,
    /// The labels listed.
    pub labels: Vec<String>,
    /// The metrics (names) in the clause's scope.
    pub metrics: Vec<String>,
}

/// What a query uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Every metric reference, in order.
    pub metrics: Vec<MetricRef>,
    /// Every grouping clause.
    pub groupings: Vec<Grouping>,
}

impl Analysis {
    /// The distinct metric names.
    pub fn names(&self) -> BTreeSet<String> {
        self.metrics.iter().map(|m| m.name.clone()).collect()
    }
}

fn matching_close(toks: &[Tok], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct("(") => depth += 1,
            Tok::Punct(")") => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err("unbalanced parentheses".into())
}

fn matching_open(toks: &[Tok], close: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for j in (0..=close).rev() {
        match &toks[j] {
            Tok::Punct(")") => depth += 1,
            Tok::Punct("(") => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err("unbalanced parentheses".into())
}

/// Finds the metrics, their matchers and the grouping clauses of a PromQL expression.
pub fn analyze(expr: &str) -> Result<Analysis, String> {
    let toks = lex(expr)?;
    let mut metrics: Vec<(usize, MetricRef)> = Vec::new();
    // (keyword, labels, scope start token, scope end token)
    let mut groups: Vec<(String, Vec<String>, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Tok::Ident(word) = &toks[i] else {
            if toks[i] == Tok::Punct("{") {
                return Err(format!("a selector without a metric name in {expr:?}"));
            }
            i += 1;
            continue;
        };
        let next = toks.get(i + 1);
        if KEYWORDS.contains(&word.as_str()) {
            if next != Some(&Tok::Punct("(")) {
                i += 1;
                continue;
            }
            let close = matching_close(&toks, i + 1)?;
            let mut labels = Vec::new();
            for t in &toks[i + 2..close] {
                match t {
                    Tok::Ident(l) => labels.push(l.clone()),
                    Tok::Punct(",") => {}
                    other => return Err(format!("{other:?} in a {word} list of {expr:?}")),
                }
            }
            let scope = match word.as_str() {
                "by" | "without" => {
                    if toks.get(close + 1) == Some(&Tok::Punct("(")) {
                        // sum by (l) (…)
                        (close + 1, matching_close(&toks, close + 1)?)
                    } else if i > 0 && toks[i - 1] == Tok::Punct(")") {
                        // sum(…) by (l)
                        (matching_open(&toks, i - 1)?, i - 1)
                    } else {
                        return Err(format!("cannot tell what `{word}` applies to in {expr:?}"));
                    }
                }
                // Vector matching: the labels must exist on both sides; the whole
                // expression is a safe approximation.
                _ => (0, toks.len()),
            };
            groups.push((word.clone(), labels, scope.0, scope.1));
            i = close + 1;
            continue;
        }
        let aggregation_clause = matches!(next, Some(Tok::Ident(k)) if k == "by" || k == "without");
        if next == Some(&Tok::Punct("(")) || aggregation_clause {
            // A function or an aggregation (`sum(…)`, `sum by (…) (…)`).
            i += 1;
            continue;
        }
        if matches!(word.as_str(), "Inf" | "NaN" | "inf" | "nan") {
            i += 1;
            continue;
        }
        let mut m = MetricRef {
            name: word.clone(),
            matchers: Vec::new(),
        };
        let at = i;
        i += 1;
        if toks.get(i) == Some(&Tok::Punct("{")) {
            i += 1;
            loop {
                match toks.get(i) {
                    Some(Tok::Punct("}")) => {
                        i += 1;
                        break;
                    }
                    Some(Tok::Punct(",")) => i += 1,
                    Some(Tok::Ident(label)) => {
                        let op = match toks.get(i + 1) {
                            Some(Tok::Punct(op @ ("=" | "!=" | "=~" | "!~"))) => op.to_string(),
                            other => return Err(format!("matcher {label} {other:?} in {expr:?}")),
                        };
                        let value = match toks.get(i + 2) {
                            Some(Tok::Str(v)) => v.clone(),
                            other => return Err(format!("matcher value {other:?} in {expr:?}")),
                        };
                        m.matchers.push(Matcher {
                            label: label.clone(),
                            op,
                            value,
                        });
                        i += 3;
                    }
                    other => return Err(format!("{other:?} in a selector of {expr:?}")),
                }
            }
        }
        metrics.push((at, m));
    }
    let groupings = groups
        .into_iter()
        .map(|(keyword, labels, from, to)| Grouping {
            keyword,
            labels,
            metrics: metrics
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .map(|(_, m)| m.name.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect();
    Ok(Analysis {
        metrics: metrics.into_iter().map(|(_, m)| m).collect(),
        groupings,
    })
}
