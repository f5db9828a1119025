//! `@{referenceId.field}` references: a subrequest's URL and body with each replaced by
//! the value an earlier subrequest answered (`.` for a key, `[n]` for an array element,
//! case-sensitive).

use serde_json::Value as JsonValue;

use super::{SubResponse, Subrequest};

/// The subrequest's URL and body with every reference replaced, or the first reference
/// that has no value.
pub(super) fn resolve(
    subrequest: &Subrequest,
    done: &[SubResponse],
) -> Result<(String, Option<JsonValue>), String> {
    let lookup = |expression: &str| -> Option<JsonValue> {
        let reference_id = reference_id_of(expression);
        // Only an earlier subrequest's answer can be read, and only if it succeeded.
        let response = done.iter().find(|r| r.reference_id == reference_id)?;
        if !response.succeeded() {
            return None;
        }
        navigate(&response.body, &expression[reference_id.len()..])
    };
    let url = substitute_text(&subrequest.url, &lookup)?;
    let body = subrequest
        .body
        .as_ref()
        .map(|b| substitute_json(b, &lookup))
        .transpose()?;
    Ok((url, body))
}

/// The referenceId an expression such as `NewAccount.id` or `create0[2].id` starts with.
pub(super) fn reference_id_of(expression: &str) -> &str {
    let end = expression.find(['.', '[']).unwrap_or(expression.len());
    &expression[..end]
}

/// Follows `.key` and `[n]` steps into `value`; `None` when a step does not exist or the
/// end is not a scalar.
pub(super) fn navigate(value: &JsonValue, mut steps: &str) -> Option<JsonValue> {
    let mut current = value;
    while !steps.is_empty() {
        if let Some(rest) = steps.strip_prefix('[') {
            let (index, rest) = rest.split_once(']')?;
            current = current.as_array()?.get(index.parse::<usize>().ok()?)?;
            steps = rest;
        } else if let Some(rest) = steps.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            current = current.as_object()?.get(&rest[..end])?;
            steps = &rest[end..];
        } else {
            return None;
        }
    }
    match current {
        JsonValue::String(_) | JsonValue::Number(_) | JsonValue::Bool(_) => Some(current.clone()),
        _ => None,
    }
}

pub(super) fn as_text(value: &JsonValue) -> String {
    match value {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `@{…}` in `text` with its value.
pub(super) fn substitute_text(
    text: &str,
    lookup: &impl Fn(&str) -> Option<JsonValue>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let expression = &rest[start + 2..start + 2 + len];
        let value = lookup(expression).ok_or_else(|| expression.to_owned())?;
        out.push_str(&rest[..start]);
        out.push_str(&as_text(&value));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces references in every string of `value`; a string that is one reference and
/// nothing else takes the referenced value as it is (a number stays a number).
pub(super) fn substitute_json(
    value: &JsonValue,
    lookup: &impl Fn(&str) -> Option<JsonValue>,
) -> Result<JsonValue, String> {
    Ok(match value {
        JsonValue::String(s) => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|inner| !inner.contains('}'));
            match whole {
                Some(expression) => lookup(expression).ok_or_else(|| expression.to_owned())?,
                None => JsonValue::String(substitute_text(s, lookup)?),
            }
        }
        JsonValue::Array(items) => JsonValue::Array(
            items
                .iter()
                .map(|i| substitute_json(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        JsonValue::Object(map) => JsonValue::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute_json(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
