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

#[cfg(test)]
mod tests {
    use super::*;

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
