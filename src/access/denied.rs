//! Why a request was refused access, as a type: the status, the client's message, the security
//! event and the metric label all come from the variant, never from matching message text.

use http::StatusCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing X-API-Key header")]
    MissingKey,
    #[error("malformed API key")]
    MalformedKey,
    #[error("invalid API key")]
    InvalidKey,
    /// Recent failed secrets for this key id: unproven secrets are refused without bcrypt
    /// until the window passes (the key's proven secret still works).
    #[error("invalid API key")]
    KeyLockedOut,
    #[error("API key expired")]
    ExpiredKey,
    #[error("the user is suspended")]
    UserSuspended,
    #[error("the user is deleted")]
    UserDeleted,
    #[error("the client IP is not in the user's whitelist")]
    IpNotAllowed,
    #[error("the role `{0}` does not allow this")]
    Role(&'static str),
    #[error("only your own quota is readable here; operators use the admin listener")]
    NotOwnQuota,
    #[error("missing, malformed, invalid or expired source signature")]
    SourceSignature,
    #[error("a valid metrics bearer token is required")]
    MetricsToken,
}

impl Denied {
    pub fn status(self) -> StatusCode {
        match self {
            Denied::MissingKey
            | Denied::MalformedKey
            | Denied::InvalidKey
            | Denied::KeyLockedOut
            | Denied::ExpiredKey
            | Denied::MetricsToken => StatusCode::UNAUTHORIZED,
            Denied::UserSuspended
            | Denied::UserDeleted
            | Denied::IpNotAllowed
            | Denied::Role(_)
            | Denied::NotOwnQuota
            | Denied::SourceSignature => StatusCode::FORBIDDEN,
        }
    }

    /// The `event` of the security log line.
    pub fn event(self) -> &'static str {
        match self {
            Denied::IpNotAllowed => "ip_blocked",
            Denied::KeyLockedOut => "auth_lockout",
            Denied::Role(_) | Denied::NotOwnQuota => "access_denied",
            _ => "auth_failure",
        }
    }

    /// The `reason` label of `gateway_access_denied_total` (a closed set).
    pub fn reason(self) -> &'static str {
        match self {
            Denied::MissingKey => "missing_key",
            Denied::MalformedKey => "malformed_key",
            Denied::InvalidKey => "invalid_key",
            Denied::KeyLockedOut => "key_locked_out",
            Denied::ExpiredKey => "expired_key",
            Denied::UserSuspended => "user_suspended",
            Denied::UserDeleted => "user_deleted",
            Denied::IpNotAllowed => "ip_not_allowed",
            Denied::Role(_) => "role",
            Denied::NotOwnQuota => "not_own_quota",
            Denied::SourceSignature => "source_signature",
            Denied::MetricsToken => "metrics_token",
        }
    }

    /// Every reason, for the metric's documentation and tests.
    pub const ALL: [Denied; 12] = [
        Denied::MissingKey,
        Denied::MalformedKey,
        Denied::InvalidKey,
        Denied::KeyLockedOut,
        Denied::ExpiredKey,
        Denied::UserSuspended,
        Denied::UserDeleted,
        Denied::IpNotAllowed,
        Denied::Role("user"),
        Denied::NotOwnQuota,
        Denied::SourceSignature,
        Denied::MetricsToken,
    ];
}
