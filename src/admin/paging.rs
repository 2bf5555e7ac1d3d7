//! The query strings of the admin listener's lists: `GET /api/v1/users` (search, filters and a
//! cursor, so ten thousand users page as fast as ten) and `GET /api/v1/audit`. Every unknown
//! or malformed parameter is a 400 naming it.

use crate::db::audit::AuditFilter;
use crate::db::users::UserFilter;
use crate::error::{GatewayError, GatewayResult};
use crate::identity::model::{Role, Status};

/// Longest `q` (a substring of id, name or email).
const MAX_QUERY: usize = 200;
pub const MAX_LIMIT: u64 = 1000;

fn limit(value: &str) -> GatewayResult<u64> {
    value
        .parse()
        .ok()
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| GatewayError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")))
}

fn unknown(name: &str) -> GatewayError {
    GatewayError::invalid(
        crate::imgproxy::params::clip(name).to_string(),
        "unknown parameter",
    )
}

/// `?q=&status=&role=&limit=&after=` of the user list (default limit 100).
pub fn users(query: &str) -> GatewayResult<UserFilter> {
    let mut filter = UserFilter {
        limit: 100,
        ..UserFilter::default()
    };
    for (name, value) in crate::query::pairs(query) {
        match name.as_ref() {
            "q" if value.chars().count() <= MAX_QUERY => {
                filter.q = Some(value.to_lowercase()).filter(|q| !q.is_empty())
            }
            "q" => {
                return Err(GatewayError::invalid(
                    "q",
                    format!("must be at most {MAX_QUERY} characters"),
                ))
            }
            "status" => {
                let status = Status::parse(&value).ok_or_else(|| {
                    GatewayError::invalid("status", "must be active, suspended or deleted")
                })?;
                filter.status = Some(status.as_str());
            }
            "role" => {
                let role = Role::parse(&value).ok_or_else(|| {
                    GatewayError::invalid("role", "must be admin, viewer or user")
                })?;
                filter.role = Some(role.as_str());
            }
            "limit" => filter.limit = limit(&value)?,
            "after" => filter.after = Some(value.into_owned()),
            other => return Err(unknown(other)),
        }
    }
    Ok(filter)
}

/// `?limit=&before=&actor=&action=&target=` of the audit log (default limit 100).
pub fn audit(query: &str) -> GatewayResult<AuditFilter> {
    let mut filter = AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    };
    for (name, value) in crate::query::pairs(query) {
        let exact = || Some(value.to_string()).filter(|v| !v.is_empty());
        match name.as_ref() {
            "limit" => filter.limit = limit(&value)?,
            "before" => {
                filter.before = Some(
                    value
                        .parse()
                        .map_err(|_| GatewayError::invalid("before", "must be an entry id"))?,
                )
            }
            "actor" => filter.actor = exact(),
            "action" => filter.action = exact(),
            "target" => filter.target = exact(),
            other => return Err(unknown(other)),
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_queries() {
        let f = users("q=Ann%20B&status=active&role=viewer&limit=5&after=u-9").unwrap();
        assert_eq!(f.q.as_deref(), Some("ann b"));
        assert_eq!(
            (f.status, f.role, f.limit),
            (Some("active"), Some("viewer"), 5)
        );
        assert_eq!(f.after.as_deref(), Some("u-9"));
        assert_eq!(users("").unwrap().limit, 100);
        for (bad, field) in [
            ("status=gone", "status"),
            ("role=root", "role"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("colour=red", "colour"),
        ] {
            let err = users(bad).unwrap_err();
            assert_eq!(err.field(), Some(field), "{bad}");
        }
        assert!(users(&format!("q={}", "x".repeat(201))).is_err());
    }
}
