//! Mutations for the fuzz properties of `fuzz_chart.rs`: edits of a recorded
//! response's JSON tree (replace, retype, nest, remove, duplicate, swap or
//! truncate a node; set or remove a field the parser reads) and of its text
//! (numbers JSON cannot hold exactly, flipped bytes, cuts, inserts).

use super::*;
/// Fields of a recorded response worth aiming at (relative to the root).
pub(crate) const TARGETS: [&str; 18] = [
    "/chart/result/0/timestamp",
    "/chart/result/0/indicators/quote/0/close",
    "/chart/result/0/indicators/quote/0/open",
    "/chart/result/0/indicators/quote/0/volume",
    "/chart/result/0/indicators/adjclose/0/adjclose",
    "/chart/result/0/meta/exchangeTimezoneName",
    "/chart/result/0/meta/gmtoffset",
    "/chart/result/0/meta/currency",
    "/chart/result/0/meta/regularMarketPrice",
    "/chart/result/0/meta/longName",
    "/chart/result/0/meta",
    "/chart/result/0/indicators/quote",
    "/chart/result/0/indicators/adjclose",
    "/chart/result/0/indicators",
    "/chart/result/0",
    "/chart/result",
    "/chart/error",
    "/chart",
];

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Replace the n-th node (pre-order) by a value.
    Replace(usize, Value),
    /// Turn the n-th node into another type holding "the same" content.
    Retype(usize),
    /// Wrap the n-th node in `depth` arrays.
    Nest(usize, usize),
    /// In the n-th array or object: remove, duplicate or swap children.
    Remove(usize, usize),
    Duplicate(usize, usize),
    Swap(usize, usize, usize),
    Truncate(usize, usize),
    /// Set (Some) or remove (None) a target field, or one element of it.
    Target(usize, Option<usize>, Option<Value>),
}

#[derive(Debug, Clone)]
pub(crate) enum TextMutation {
    /// Replace the n-th number of the text by a token JSON cannot hold exactly.
    Number(usize, &'static str),
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, &'static str),
}

pub(crate) const NUMBER_TOKENS: [&str; 12] = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "1e-400",
    "-0",
    "1.5",
    "\"12\"",
    "null",
];

pub(crate) const INSERTS: [&str; 10] = [
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "\\u0000",
    "\\ud800",
    "\u{feff}",
    "[[[[[[[[[[",
];

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let node = any::<usize>();
    prop_oneof![
        2 => (node, prop_oneof![3 => hostile_leaf(), 1 => any_json()])
            .prop_map(|(n, v)| Mutation::Replace(n, v)),
        1 => node.prop_map(Mutation::Retype),
        1 => (node, prop_oneof![1..8usize, 120..140usize, 200..400usize])
            .prop_map(|(n, d)| Mutation::Nest(n, d)),
        1 => (node, any::<usize>()).prop_map(|(n, c)| Mutation::Remove(n, c)),
        1 => (node, any::<usize>()).prop_map(|(n, c)| Mutation::Duplicate(n, c)),
        1 => (node, any::<usize>(), any::<usize>()).prop_map(|(n, a, b)| Mutation::Swap(n, a, b)),
        1 => (node, 0..14usize).prop_map(|(n, l)| Mutation::Truncate(n, l)),
        12 => (
            // The timestamps (target 0) twice as often as any other target.
            prop_oneof![1 => Just(0), 8 => 0..TARGETS.len()],
            proptest::option::weighted(0.7, any::<usize>()),
            proptest::option::weighted(
                0.8,
                prop_oneof![
                    3 => hostile_number(),
                    2 => hostile_timestamp().prop_map(Value::from),
                    1 => hostile_leaf(),
                    1 => any_json(),
                ]
            ),
        )
            .prop_map(|(t, i, v)| Mutation::Target(t, i, v)),
    ]
}

pub(crate) fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        3 => (any::<usize>(), prop::sample::select(NUMBER_TOKENS.to_vec()))
            .prop_map(|(n, t)| TextMutation::Number(n, t)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| TextMutation::Flip(p, b)),
        1 => any::<usize>().prop_map(TextMutation::Cut),
        1 => (any::<usize>(), prop::sample::select(INSERTS.to_vec()))
            .prop_map(|(p, t)| TextMutation::Insert(p, t)),
    ]
}

pub(crate) fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The n-th node in pre-order (`n` counts down to it).
pub(crate) fn nth_mut<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(v);
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| nth_mut(x, n)),
        Value::Object(o) => o.values_mut().find_map(|x| nth_mut(x, n)),
        _ => None,
    }
}

pub(crate) fn node(root: &mut Value, pick: usize) -> &mut Value {
    let mut n = pick % count_nodes(root);
    nth_mut(root, &mut n).expect("n < node count")
}

/// The n-th array or object, if any.
pub(crate) fn container(root: &mut Value, pick: usize) -> Option<&mut Value> {
    fn collect(v: &Value, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        let children: Vec<&Value> = match v {
            Value::Array(a) if !a.is_empty() => a.iter().collect(),
            Value::Object(o) if !o.is_empty() => o.values().collect(),
            _ => return,
        };
        out.push(path.clone());
        for (i, c) in children.into_iter().enumerate() {
            path.push(i);
            collect(c, path, out);
            path.pop();
        }
    }
    let mut paths = Vec::new();
    collect(root, &mut Vec::new(), &mut paths);
    if paths.is_empty() {
        return None;
    }
    let mut at = root;
    for &i in &paths[pick % paths.len()] {
        at = match at {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
    Some(at)
}

pub(crate) fn retype(v: &Value) -> Value {
    match v {
        Value::Null => Value::Bool(false),
        Value::Bool(b) => Value::from(u8::from(*b)),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .map(float)
            .unwrap_or_else(|| Value::Array(vec![Value::String(s.clone())])),
        Value::Array(a) => Value::Object(
            a.iter()
                .enumerate()
                .map(|(i, x)| (i.to_string(), x.clone()))
                .collect(),
        ),
        Value::Object(o) => Value::Array(o.values().cloned().collect()),
    }
}

pub(crate) fn apply(root: &mut Value, m: &Mutation) {
    match m {
        Mutation::Replace(n, with) => *node(root, *n) = with.clone(),
        Mutation::Retype(n) => {
            let at = node(root, *n);
            *at = retype(at);
        }
        Mutation::Nest(n, depth) => {
            let at = node(root, *n);
            let mut v = at.take();
            for _ in 0..*depth {
                v = Value::Array(vec![v]);
            }
            *at = v;
        }
        Mutation::Remove(n, c) => match container(root, *n) {
            Some(Value::Array(a)) => {
                a.remove(c % a.len());
            }
            Some(Value::Object(o)) => {
                let k = o.keys().nth(c % o.len()).unwrap().clone();
                o.remove(&k);
            }
            _ => {}
        },
        Mutation::Duplicate(n, c) => match container(root, *n) {
            Some(Value::Array(a)) => {
                let i = c % a.len();
                a.insert(i, a[i].clone());
            }
            Some(Value::Object(o)) => {
                // The value under another of the parser's keys.
                let v = o.values().nth(c % o.len()).unwrap().clone();
                o.insert(KEYS[c % KEYS.len()].to_string(), v);
            }
            _ => {}
        },
        Mutation::Swap(n, x, y) => {
            if let Some(Value::Array(a)) = container(root, *n) {
                let len = a.len();
                a.swap(x % len, y % len);
            }
        }
        Mutation::Truncate(n, len) => {
            if let Some(Value::Array(a)) = container(root, *n) {
                a.truncate(*len);
            }
        }
        Mutation::Target(t, elem, with) => {
            let pointer = TARGETS[*t];
            let (parent, last) = pointer.rsplit_once('/').unwrap();
            match (elem, root.pointer_mut(pointer)) {
                (Some(i), Some(Value::Array(a))) if !a.is_empty() => {
                    let i = i % a.len();
                    match with {
                        Some(v) => a[i] = v.clone(),
                        None => {
                            a.remove(i);
                        }
                    }
                }
                _ => match (with, root.pointer_mut(parent)) {
                    (Some(v), Some(Value::Object(o))) => {
                        o.insert(last.to_string(), v.clone());
                    }
                    (Some(v), Some(Value::Array(a))) if !a.is_empty() => {
                        a[0] = v.clone();
                    }
                    (None, Some(Value::Object(o))) => {
                        o.remove(last);
                    }
                    (None, Some(Value::Array(a))) if !a.is_empty() => {
                        a.remove(0);
                    }
                    _ => {}
                },
            }
        }
    }
}

pub(crate) fn apply_text(text: &mut Vec<u8>, m: &TextMutation) {
    if text.is_empty() {
        return;
    }
    match m {
        TextMutation::Number(n, token) => {
            // Numbers start after `[`, `,` or `:` (the serializer writes no spaces).
            let starts: Vec<usize> = (1..text.len())
                .filter(|&i| {
                    b"[,:".contains(&text[i - 1]) && (text[i] == b'-' || text[i].is_ascii_digit())
                })
                .collect();
            if starts.is_empty() {
                return;
            }
            let start = starts[n % starts.len()];
            let end = (start + 1..text.len())
                .find(|&i| !b"0123456789+-.eE".contains(&text[i]))
                .unwrap_or(text.len());
            text.splice(start..end, token.bytes());
        }
        TextMutation::Flip(p, b) => {
            let p = p % text.len();
            text[p] ^= b | 1;
        }
        TextMutation::Cut(p) => text.truncate(p % text.len()),
        TextMutation::Insert(p, token) => {
            let p = p % text.len();
            text.splice(p..p, token.bytes());
        }
    }
}

pub(crate) fn mutated_fixture() -> impl Strategy<Value = (usize, Vec<Mutation>, Vec<TextMutation>)>
{
    let (small, full): (Vec<usize>, Vec<usize>) =
        (0..FIXTURES.len()).partition(|&i| FIXTURES[i].0.ends_with(']'));
    (
        // Whole recordings (up to 80 KB) cost ten times a window: one case in ten.
        prop_oneof![9 => prop::sample::select(small), 1 => prop::sample::select(full)],
        vec(mutation(), 1..4),
        prop_oneof![4 => Just(vec![]), 1 => vec(text_mutation(), 1..3)],
    )
}

pub(crate) fn mutate(fixture: usize, mutations: &[Mutation], text: &[TextMutation]) -> Vec<u8> {
    let (_, original) = &FIXTURES[fixture];
    let mut value = original.clone();
    for m in mutations {
        apply(&mut value, m);
    }
    let mut body = serde_json::to_vec(&value).unwrap();
    for m in text {
        apply_text(&mut body, m);
    }
    body
}
