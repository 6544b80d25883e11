//! Redaction of secrets in query strings: the values of configured parameter
//! names (`http.redact_query_params`, compared without case) become `REDACTED`
//! in `url.query` and `url.full`. Bodies are never exported at all.

/// The configured names, lower-cased once.
#[derive(Clone, Debug, Default)]
pub struct QueryRedactor {
    names: Vec<String>,
}

pub const REDACTED: &str = "REDACTED";

impl QueryRedactor {
    pub fn new(names: &[String]) -> Self {
        Self {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    fn is_secret(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// `query` (without the `?`) with secret values replaced; borrowed back
    /// unchanged when nothing matched, which is the common case.
    pub fn redact<'a>(&self, query: &'a str) -> std::borrow::Cow<'a, str> {
        let needs = query.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            pair.contains('=') && self.is_secret(name)
        });
        if !needs {
            return std::borrow::Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if self.is_secret(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_only_named_values() {
        let r = QueryRedactor::new(&["token".to_string(), "X-Amz-Signature".to_string()]);
        assert_eq!(r.redact("a=1&b=2"), "a=1&b=2");
        assert!(matches!(r.redact("a=1"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            r.redact("a=1&TOKEN=abc&x-amz-signature=zz&tokenish=2&token"),
            "a=1&TOKEN=REDACTED&x-amz-signature=REDACTED&tokenish=2&token"
        );
        assert_eq!(r.redact(""), "");
    }
}
