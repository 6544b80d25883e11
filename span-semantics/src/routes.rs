//! `http.route` from configured patterns such as `/users/{id}/orders`: a
//! `{name}` segment matches any one non-empty path segment, a final `{*rest}`
//! matches the remainder. The first matching pattern wins. No guessing here:
//! a path no pattern matches has no route.

/// One compiled pattern.
#[derive(Clone, Debug)]
struct Route {
    pattern: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

/// The configured routes, in order.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(patterns: &[String]) -> Self {
        let routes = patterns
            .iter()
            .map(|p| Route {
                pattern: p.clone(),
                segments: p
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| {
                        if s.starts_with("{*") && s.ends_with('}') {
                            Segment::Rest
                        } else if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_string())
                        }
                    })
                    .collect(),
            })
            .collect();
        Self { routes }
    }

    /// The first pattern that matches `path` (without its query).
    pub fn match_path(&self, path: &str) -> Option<&str> {
        let parts = path.trim_start_matches('/');
        'routes: for route in &self.routes {
            let mut it = parts.split('/');
            for seg in &route.segments {
                match seg {
                    Segment::Rest => return Some(&route.pattern),
                    Segment::Param => match it.next() {
                        Some(s) if !s.is_empty() => {}
                        _ => continue 'routes,
                    },
                    Segment::Literal(l) => match it.next() {
                        Some(s) if s == l => {}
                        _ => continue 'routes,
                    },
                }
            }
            if it.next().is_none() {
                return Some(&route.pattern);
            }
        }
        None
    }
}

/// The path with high-cardinality segments replaced: all digits → `{id}`,
/// a UUID → `{uuid}`, 16 or more hexadecimal digits → `{hash}`. For span names
/// when no configured route matches (never for `http.route`).
pub fn templated_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let b = seg.as_bytes();
        let is_uuid = b.len() == 36
            && b.iter().enumerate().all(|(j, c)| {
                if matches!(j, 8 | 13 | 18 | 23) {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
            out.push_str("{id}");
        } else if is_uuid {
            out.push_str("{uuid}");
        } else if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
            out.push_str("{hash}");
        } else {
            out.push_str(seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_high_cardinality_segments() {
        assert_eq!(
            templated_path("/users/42/orders/7"),
            "/users/{id}/orders/{id}"
        );
        assert_eq!(
            templated_path("/blob/0123456789abcdef0123/x"),
            "/blob/{hash}/x"
        );
        assert_eq!(
            templated_path("/s/123e4567-e89b-12d3-a456-426614174000"),
            "/s/{uuid}"
        );
        assert_eq!(templated_path("/v2/cafe/"), "/v2/cafe/");
        assert_eq!(templated_path("/"), "/");
    }

    #[test]
    fn matches_in_order() {
        let t = RouteTable::new(&[
            "/users/{id}".to_string(),
            "/users/{id}/orders/{order}".to_string(),
            "/static/{*file}".to_string(),
            "/".to_string(),
        ]);
        assert_eq!(t.match_path("/users/42"), Some("/users/{id}"));
        assert_eq!(
            t.match_path("/users/42/orders/7"),
            Some("/users/{id}/orders/{order}")
        );
        assert_eq!(t.match_path("/users/"), None);
        assert_eq!(t.match_path("/users/42/x"), None);
        assert_eq!(t.match_path("/static/css/a.css"), Some("/static/{*file}"));
        assert_eq!(t.match_path("/"), Some("/"));
        assert_eq!(t.match_path("/other"), None);
        assert_eq!(RouteTable::default().match_path("/x"), None);
    }
}
