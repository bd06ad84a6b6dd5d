//! Query strings, parsed as leniently as Patroni's `parse_qs`: a malformed pair never fails a
//! health check request, it is just not matched.

/// The `key=value` pairs of a query string, in order, percent-decoded.
#[derive(Debug, Default, Clone)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

/// Query parameters `tag_<name>=<value>` filter on the member's tags (Patroni's convention).
const TAG_PREFIX: &str = "tag_";

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> QueryParams {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        QueryParams { pairs }
    }

    /// The first value given for `key` (Patroni reads `parse_qs(...)[key][0]`).
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `(tag name, wanted value)` for every `tag_<name>=<value>` parameter.
    pub fn tag_filters(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(TAG_PREFIX).map(|name| (name, v.as_str())))
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; invalid escapes
/// are kept as they are rather than rejected.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex_value(*high).zip(hex_value(*low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, other) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_tag_filters() {
        let q = QueryParams::parse(Some("lag=10MB&tag_dc=east%2D1&tag_x=a+b&flag&bad=%zz"));
        assert_eq!(q.first("lag"), Some("10MB"));
        assert_eq!(q.first("flag"), Some(""));
        assert_eq!(q.first("bad"), Some("%zz"));
        assert_eq!(
            q.tag_filters().collect::<Vec<_>>(),
            vec![("dc", "east-1"), ("x", "a b")]
        );
        assert_eq!(QueryParams::parse(None).first("lag"), None);
    }
}
