//! Canonical JSON: object keys sorted by byte order at every level, whatever map type or serde_json
//! feature (`preserve_order`) a caller uses, numbers and string escapes as serde_json writes them.
//! Pretty form: two-space indent and a final newline (files); compact form: no whitespace
//! (signed payloads). Same value, same bytes.

use serde::Serialize;
use serde_json::Value;

/// `value` as canonical pretty JSON with a trailing newline.
pub fn to_pretty(value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = String::new();
    write(&mut out, &serde_json::to_value(value)?, Some(0));
    out.push('\n');
    Ok(out.into_bytes())
}

/// `value` as canonical compact JSON.
pub fn to_compact(value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = String::new();
    write(&mut out, &serde_json::to_value(value)?, None);
    Ok(out.into_bytes())
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n));
    }
}

fn write(out: &mut String, v: &Value, indent: Option<usize>) {
    let inner = indent.map(|n| n + 2);
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write(out, e, inner);
            }
            newline(out, indent);
            out.push(']');
        }
        Value::Object(m) if !m.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, e)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(if indent.is_some() { ": " } else { ":" });
                write(out, e, inner);
            }
            newline(out, indent);
            out.push('}');
        }
        // Scalars and empty containers: serde_json's own rendering.
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": "é\n", "x": 1.5}], "c": []}, "A": {}});
        assert_eq!(
            String::from_utf8(to_compact(&v).unwrap()).unwrap(),
            r#"{"A":{},"a":{"c":[],"z":[true,null,{"x":1.5,"y":"é\n"}]},"b":1}"#
        );
        assert_eq!(
            String::from_utf8(to_pretty(&json!({"b": [1], "a": 2})).unwrap()).unwrap(),
            "{\n  \"a\": 2,\n  \"b\": [\n    1\n  ]\n}\n"
        );
    }

    #[test]
    fn parses_back_to_the_same_value() {
        let v = json!({"k": ["\u{1}", -3, 18446744073709551615u64], "j": {"q": "\"quoted\""}});
        for bytes in [to_compact(&v).unwrap(), to_pretty(&v).unwrap()] {
            assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), v);
        }
    }
}
