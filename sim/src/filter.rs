//! Linode's `X-Filter` header: field equality (a list field such as `tags` matches when it contains the
//! value), the operators `+contains`, `+neq`, `+gt`, `+gte`, `+lt`, `+lte`, the combinators `+and` and
//! `+or`, and ordering with `+order_by` / `+order`. Dotted keys reach into objects.

use std::cmp::Ordering;

use serde_json::Value;

/// Whether `item` passes `filter`.
pub(crate) fn matches(filter: &Value, item: &Value) -> bool {
    let Some(conditions) = filter.as_object() else {
        return true;
    };
    conditions.iter().all(|(key, cond)| match key.as_str() {
        "+and" => cond
            .as_array()
            .is_none_or(|all| all.iter().all(|f| matches(f, item))),
        "+or" => cond
            .as_array()
            .is_none_or(|any| any.iter().any(|f| matches(f, item))),
        "+order_by" | "+order" => true,
        field => field_matches(lookup(item, field), cond),
    })
}

fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, k| v.get(k))
}

fn field_matches(value: Option<&Value>, cond: &Value) -> bool {
    if let Some(ops) = cond.as_object()
        && ops.keys().all(|k| k.starts_with('+'))
    {
        return ops.iter().all(|(op, arg)| operator(value, op, arg));
    }
    match value {
        Some(Value::Array(list)) => list.iter().any(|v| equal(v, cond)),
        Some(v) => equal(v, cond),
        None => cond.is_null(),
    }
}

fn operator(value: Option<&Value>, op: &str, arg: &Value) -> bool {
    let Some(value) = value else { return false };
    match op {
        "+contains" => match (value, arg.as_str()) {
            (Value::String(s), Some(needle)) => s.contains(needle),
            (Value::Array(list), Some(needle)) => list
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.contains(needle))),
            _ => false,
        },
        "+neq" => !equal(value, arg),
        "+gt" => compare(value, arg) == Some(Ordering::Greater),
        "+gte" => matches!(compare(value, arg), Some(Ordering::Greater | Ordering::Equal)),
        "+lt" => compare(value, arg) == Some(Ordering::Less),
        "+lte" => matches!(compare(value, arg), Some(Ordering::Less | Ordering::Equal)),
        _ => false,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Number(x), Value::String(y)) | (Value::String(y), Value::Number(x)) => x.to_string() == *y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Filters and orders `items` by the `X-Filter` header value (invalid JSON → `Err`).
pub(crate) fn apply(header: Option<&str>, items: Vec<Value>) -> Result<Vec<Value>, String> {
    let Some(text) = header.filter(|h| !h.trim().is_empty()) else {
        return Ok(items);
    };
    let filter: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out: Vec<Value> = items.into_iter().filter(|i| matches(&filter, i)).collect();
    if let Some(key) = filter.get("+order_by").and_then(Value::as_str) {
        out.sort_by(|a, b| compare_opt(lookup(a, key), lookup(b, key)));
        if filter.get("+order").and_then(Value::as_str) == Some("desc") {
            out.reverse();
        }
    }
    Ok(out)
}

fn compare_opt(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare(a, b).unwrap_or(Ordering::Equal),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_like_linode() {
        let items = vec![
            json!({"id": 1, "label": "ws-1", "tags": ["flotilla", "fl-dep:a"], "region": "gb-lon"}),
            json!({"id": 2, "label": "db-1", "tags": ["fl-dep:b"], "region": "nl-ams"}),
        ];
        let ids = |f: &str| -> Vec<i64> {
            apply(Some(f), items.clone())
                .unwrap()
                .iter()
                .map(|v| v["id"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(ids(r#"{"tags": "fl-dep:a"}"#), [1]);
        assert_eq!(ids(r#"{"label": {"+contains": "db-"}}"#), [2]);
        assert_eq!(ids(r#"{"+or": [{"id": 1}, {"region": "nl-ams"}]}"#), [1, 2]);
        assert_eq!(
            ids(r#"{"+and": [{"id": 1}, {"region": "nl-ams"}]}"#),
            Vec::<i64>::new()
        );
        assert_eq!(ids(r#"{"+order_by": "id", "+order": "desc"}"#), [2, 1]);
        assert!(apply(Some("{not json"), items).is_err());
    }
}
