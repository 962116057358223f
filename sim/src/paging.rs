//! Each provider's pagination, exactly as its clients walk it.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use crate::config::Provider;
use crate::error::{ApiError, ApiResult};

/// Query parameters.
pub(crate) type Query = HashMap<String, String>;

fn number(q: &Query, name: &str, default: usize) -> Option<usize> {
    match q.get(name) {
        None => Some(default),
        Some(v) if v.is_empty() => Some(default),
        Some(v) => v.parse().ok(),
    }
}

/// Linode: `?page=&page_size=` (25–500, default 100) → `{data, page, pages, results}`.
pub(crate) fn linode(items: Vec<Value>, q: &Query) -> ApiResult<Value> {
    let p = Provider::Linode;
    let page_size = number(q, "page_size", 100)
        .filter(|s| (25..=500).contains(s))
        .ok_or_else(|| ApiError::invalid(p, "page_size", "Must be a number between 25 and 500"))?;
    let page = number(q, "page", 1)
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::invalid(p, "page", "Must be a positive number"))?;
    let results = items.len();
    let pages = results.div_ceil(page_size).max(1);
    let data: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(json!({ "data": data, "page": page, "pages": pages, "results": results }))
}

/// DigitalOcean: `?page=&per_page=` (≤ 200, default 20) → `{<key>: […], links: {pages: {first, prev,
/// next, last}}, meta: {total}}`; links are full URLs keeping the other query parameters.
pub(crate) fn digitalocean(items: Vec<Value>, key: &str, q: &Query, url: &str) -> ApiResult<Value> {
    let p = Provider::DigitalOcean;
    let per_page = number(q, "per_page", 20)
        .filter(|s| *s >= 1)
        .ok_or_else(|| {
            ApiError::new(
                p,
                axum::http::StatusCode::BAD_REQUEST,
                "per_page must be a positive integer",
            )
        })?
        .min(200);
    let page = number(q, "page", 1).filter(|p| *p >= 1).ok_or_else(|| {
        ApiError::new(
            p,
            axum::http::StatusCode::BAD_REQUEST,
            "page must be a positive integer",
        )
    })?;
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let data: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let link = |n: usize| {
        let mut params: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("page".into(), n.to_string()));
        params.push(("per_page".into(), per_page.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{url}?{query}")
    };
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    Ok(json!({ key: data, "links": { "pages": pages }, "meta": { "total": total } }))
}

fn vultr_cursor(kind: &str, offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{kind}__{offset}"))
}

/// Vultr: `?per_page=` (≤ 500, default 100) and an opaque `cursor` → `{<key>: […], meta: {total, links:
/// {next, prev}}}` with `""` where there is no page.
pub(crate) fn vultr(items: Vec<Value>, key: &str, q: &Query) -> ApiResult<Value> {
    let p = Provider::Vultr;
    let bad = |m: &str| ApiError::new(p, axum::http::StatusCode::BAD_REQUEST, m);
    let per_page = number(q, "per_page", 100)
        .filter(|s| (1..=500).contains(s))
        .ok_or_else(|| bad("Invalid per_page value."))?;
    let offset = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => base64::engine::general_purpose::STANDARD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once("__").and_then(|(_, n)| n.parse().ok()))
            .ok_or_else(|| bad("Invalid cursor."))?,
    };
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip(offset).take(per_page).collect();
    let next = if offset.saturating_add(per_page) < total {
        vultr_cursor("next", offset.saturating_add(per_page))
    } else {
        String::new()
    };
    let prev = if offset > 0 {
        vultr_cursor("prev", offset.saturating_sub(per_page))
    } else {
        String::new()
    };
    Ok(json!({ key: data, "meta": { "total": total, "links": { "next": next, "prev": prev } } }))
}

/// Cloudflare: `?page=&per_page=` → the envelope with `result_info`.
pub(crate) fn cloudflare(
    items: Vec<Value>,
    q: &Query,
    default_per_page: usize,
    max: usize,
) -> ApiResult<Value> {
    let p = Provider::Cloudflare;
    let per_page = number(q, "per_page", default_per_page)
        .filter(|s| (1..=max).contains(s))
        .ok_or_else(|| {
            ApiError::new(
                p,
                axum::http::StatusCode::BAD_REQUEST,
                format!("per_page must be between 1 and {max}"),
            )
            .code(1004)
        })?;
    let page = number(q, "page", 1)
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::new(p, axum::http::StatusCode::BAD_REQUEST, "Invalid page").code(1004))?;
    let total = items.len();
    let data: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": data,
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": data.len(),
            "total_count": total,
            "total_pages": total.div_ceil(per_page),
        }
    }))
}

/// Cloudflare's envelope around one result.
pub(crate) fn cloudflare_one(result: Value) -> Value {
    json!({ "success": true, "errors": [], "messages": [], "result": result })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({ "id": i })).collect()
    }

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn linode_pages() {
        let v = linode(items(60), &q(&[("page", "3"), ("page_size", "25")])).unwrap();
        assert_eq!(v["pages"], 3);
        assert_eq!(v["results"], 60);
        assert_eq!(v["data"].as_array().unwrap().len(), 10);
        assert!(linode(items(1), &q(&[("page_size", "10")])).is_err());
    }

    #[test]
    fn digitalocean_links() {
        let v = digitalocean(
            items(5),
            "droplets",
            &q(&[("per_page", "2"), ("tag_name", "a b")]),
            "http://h/v2/droplets",
        )
        .unwrap();
        assert_eq!(v["meta"]["total"], 5);
        assert_eq!(
            v["links"]["pages"]["next"],
            "http://h/v2/droplets?tag_name=a+b&page=2&per_page=2"
        );
        assert!(v["links"]["pages"].get("prev").is_none());
    }

    #[test]
    fn vultr_cursors_walk_to_the_end() {
        let mut cursor = String::new();
        let mut seen = 0;
        loop {
            let v = vultr(
                items(7),
                "instances",
                &q(&[("per_page", "3"), ("cursor", &cursor)]),
            )
            .unwrap();
            seen += v["instances"].as_array().unwrap().len();
            cursor = v["meta"]["links"]["next"].as_str().unwrap().to_owned();
            if cursor.is_empty() {
                break;
            }
        }
        assert_eq!(seen, 7);
    }

    #[test]
    fn cloudflare_result_info() {
        let v = cloudflare(items(27), &q(&[("page", "3"), ("per_page", "10")]), 100, 5000).unwrap();
        assert_eq!(
            v["result_info"],
            json!({"page": 3, "per_page": 10, "count": 7, "total_count": 27, "total_pages": 3})
        );
    }
}
