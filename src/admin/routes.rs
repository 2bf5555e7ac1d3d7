//! The admin listener's routes: path and method to an operation, the role action it needs and
//! the user it concerns. Unknown paths are 404, known paths with another method 405.

use super::ui::Asset;
use crate::access::Access;
use crate::error::{GatewayError, GatewayResult};
use crate::identity::rbac::Action;
use crate::proxy::route::check_method;
use http::Method;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRoute {
    /// The web UI's page shell and assets (no key: the page asks for one).
    Ui(Asset),
    /// Prometheus (no key; `admin.metrics_token` as a bearer token when set).
    Metrics,
    Health,
    Ready,
    /// The OpenAPI document (no key).
    OpenApi,
    Backends,
    /// The JSON metrics document.
    MetricsJson,
    Audit,
    /// The effective configuration, secrets redacted, and what reloads.
    Config,
    Users,
    CreateUser,
    User(String),
    UpdateUser(String),
    DeleteUser(String),
    Keys(String),
    CreateKey(String),
    RotateKey(String),
    RevokeKey(String, String),
    Quota(String),
    ResetQuota(String),
}

impl AdminRoute {
    /// What the caller's role must allow; `None` for open routes.
    pub fn action(&self) -> Option<Action> {
        use AdminRoute::*;
        Some(match self {
            Ui(_) | Metrics | Health | Ready | OpenApi => return None,
            Backends => Action::ReadBackends,
            MetricsJson => Action::ReadMetrics,
            Audit => Action::ReadAudit,
            Config => Action::ReadConfig,
            Users => Action::ListUsers,
            CreateUser => Action::CreateUser,
            User(_) => Action::ReadUser,
            UpdateUser(_) => Action::UpdateUser,
            DeleteUser(_) => Action::DeleteUser,
            Keys(_) => Action::ListKeys,
            CreateKey(_) => Action::CreateKey,
            RotateKey(_) => Action::RotateKey,
            RevokeKey(..) => Action::RevokeKey,
            Quota(_) => Action::ReadQuota,
            ResetQuota(_) => Action::ResetQuota,
        })
    }

    /// What the route needs before its handler runs.
    pub fn access(&self) -> Access {
        match self.action() {
            None => Access::Open,
            Some(_) => Access::Key,
        }
    }

    /// The route template, naming the endpoint in the endpoint rate level and in logs.
    pub fn template(&self) -> &'static str {
        use AdminRoute::*;
        match self {
            Ui(_) => "admin:/admin",
            Metrics => "admin:/metrics",
            Health => "admin:/api/v1/health",
            Ready => "admin:/api/v1/ready",
            OpenApi => "admin:/api/v1/openapi.json",
            Backends => "admin:/api/v1/backends",
            MetricsJson => "admin:/api/v1/metrics",
            Audit => "admin:/api/v1/audit",
            Config => "admin:/api/v1/config",
            Users | CreateUser => "admin:/api/v1/users",
            User(_) | UpdateUser(_) | DeleteUser(_) => "admin:/api/v1/users/{id}",
            Keys(_) | CreateKey(_) => "admin:/api/v1/users/{id}/keys",
            RotateKey(_) => "admin:/api/v1/users/{id}/keys/rotate",
            RevokeKey(..) => "admin:/api/v1/users/{id}/keys/{key_id}",
            Quota(_) => "admin:/api/v1/users/{id}/quota",
            ResetQuota(_) => "admin:/api/v1/users/{id}/quota/reset",
        }
    }

    /// The user the route reads or changes.
    pub fn target(&self) -> Option<&str> {
        use AdminRoute::*;
        match self {
            User(id)
            | UpdateUser(id)
            | DeleteUser(id)
            | Keys(id)
            | CreateKey(id)
            | RotateKey(id)
            | RevokeKey(id, _)
            | Quota(id)
            | ResetQuota(id) => Some(id),
            // Listed one by one: a new route must decide whether it concerns a user.
            Ui(_) | Metrics | Health | Ready | OpenApi | Backends | MetricsJson | Audit
            | Config | Users | CreateUser => None,
        }
    }
}

pub fn resolve(method: &Method, path: &str) -> GatewayResult<AdminRoute> {
    use AdminRoute::*;
    let not_found = || GatewayError::NotFound("no such admin route".into());
    if let Some(asset) = Asset::at(path) {
        return check_method(method, "GET").map(|_| Ui(asset));
    }
    if path == "/metrics" {
        return check_method(method, "GET").map(|_| Metrics);
    }
    let rest = path.strip_prefix("/api/v1/").ok_or_else(not_found)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let pick = |allowed: &'static str| check_method(method, allowed);
    let id = |s: &str| s.to_string();
    let is = |m: Method| method == m || (m == Method::GET && method == Method::HEAD);
    match parts.as_slice() {
        ["health"] => pick("GET").map(|_| Health),
        ["ready"] => pick("GET").map(|_| Ready),
        ["openapi.json"] => pick("GET").map(|_| OpenApi),
        ["backends"] => pick("GET").map(|_| Backends),
        ["metrics"] => pick("GET").map(|_| MetricsJson),
        ["audit"] => pick("GET").map(|_| Audit),
        ["config"] => pick("GET").map(|_| Config),
        ["users"] => pick("GET, POST").map(|_| if is(Method::GET) { Users } else { CreateUser }),
        ["users", user] if !user.is_empty() => pick("GET, PUT, DELETE").map(|_| {
            if is(Method::GET) {
                User(id(user))
            } else if method == Method::PUT {
                UpdateUser(id(user))
            } else {
                DeleteUser(id(user))
            }
        }),
        ["users", user, "keys"] if !user.is_empty() => pick("GET, POST").map(|_| {
            if is(Method::GET) {
                Keys(id(user))
            } else {
                CreateKey(id(user))
            }
        }),
        ["users", user, "quota"] if !user.is_empty() => pick("GET").map(|_| Quota(id(user))),
        ["users", user, "quota", "reset"] if !user.is_empty() => {
            pick("POST").map(|_| ResetQuota(id(user)))
        }
        ["users", user, "keys", "rotate"] if !user.is_empty() => {
            pick("POST").map(|_| RotateKey(id(user)))
        }
        ["users", user, "keys", key] if !user.is_empty() && !key.is_empty() => {
            pick("DELETE").map(|_| RevokeKey(id(user), id(key)))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        let r = |m: &str, p: &str| resolve(&m.parse().unwrap(), p);
        assert_eq!(r("GET", "/api/v1/users").unwrap(), AdminRoute::Users);
        assert_eq!(r("POST", "/api/v1/users").unwrap(), AdminRoute::CreateUser);
        assert_eq!(
            r("PUT", "/api/v1/users/u-1").unwrap(),
            AdminRoute::UpdateUser("u-1".into())
        );
        assert_eq!(
            r("POST", "/api/v1/users/u/keys/rotate").unwrap(),
            AdminRoute::RotateKey("u".into())
        );
        assert_eq!(
            r("DELETE", "/api/v1/users/u/keys/k1").unwrap(),
            AdminRoute::RevokeKey("u".into(), "k1".into())
        );
        assert_eq!(r("PATCH", "/api/v1/users/u").unwrap_err().status(), 405);
        assert_eq!(r("TRACE", "/admin").unwrap_err().status(), 405);
        assert_eq!(r("FOO", "/api/v1/users/u").unwrap_err().status(), 405);
        assert_eq!(
            r("GET", "/api/v1/users/u/keys/rotate")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(r("GET", "/api/v1/users/").unwrap_err().status(), 404);
        assert_eq!(r("GET", "/api/v1/nope").unwrap_err().status(), 404);
        assert_eq!(r("GET", "/users").unwrap_err().status(), 404);
    }
}
