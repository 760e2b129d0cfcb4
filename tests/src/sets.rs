//! Sets in the JSON wire format (docs/wire-formats.md) as the suites write and read them, and the
//! host-side answers the example functions are checked against.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// Output sets by name: each item's name and data.
pub type Answer = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// One item of a JSON request body: `{"name":…,"data":base64}`.
pub fn item(name: &str, data: &[u8]) -> Value {
    json!({"name": name, "data": B64.encode(data)})
}

/// The output sets of a JSON response body.
pub fn decode(body: &[u8]) -> Answer {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    v["sets"]
        .as_object()
        .unwrap_or_else(|| panic!("no sets in {v}"))
        .iter()
        .map(|(set, items)| {
            let items = items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["name"].as_str().unwrap().to_string(), B64.decode(i["data"].as_str().unwrap()).unwrap()))
                .collect();
            (set.clone(), items)
        })
        .collect()
}

/// A matrix in matmul's encoding: rows and columns (u32 LE), then the f64s row by row.
pub fn matrix(rows: u32, cols: u32, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&cols.to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Word counts as `wordcount` defines them: maximal alphanumeric runs, lowercased.
pub fn host_counts(texts: &[String]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for text in texts {
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            *counts.entry(word.chars().flat_map(char::to_lowercase).collect()).or_insert(0) += 1;
        }
    }
    counts
}

/// Set `set` of an answer with its items' data as UTF-8 text (an absent set is empty).
pub fn texts(answer: &Answer, set: &str) -> Vec<(String, String)> {
    answer
        .get(set)
        .map(|items| {
            items
                .iter()
                .map(|(name, data)| (name.clone(), String::from_utf8(data.clone()).expect("UTF-8 item")))
                .collect()
        })
        .unwrap_or_default()
}

/// A matrix multiply with a known answer: `matmul`'s input set (24×40 · 40×16 of awkward
/// values) and the product the host computes in the same summation order.
pub fn matmul_case() -> (Value, Vec<u8>) {
    let (n, k, m) = (24usize, 40usize, 16usize);
    let a: Vec<f64> = (0..n * k).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
    let b: Vec<f64> = (0..k * m).map(|i| ((i * 53 % 97) as f64 - 48.0) / 3.0 + 0.1).collect();
    let mut c = vec![0.0f64; n * m];
    for i in 0..n {
        for j in 0..m {
            let mut sum = 0.0;
            for x in 0..k {
                sum += a[i * k + x] * b[x * m + j];
            }
            c[i * m + j] = sum;
        }
    }
    let input =
        json!({"matrices": [item("a", &matrix(n as u32, k as u32, &a)), item("b", &matrix(k as u32, m as u32, &b))]});
    (input, matrix(n as u32, m as u32, &c))
}
