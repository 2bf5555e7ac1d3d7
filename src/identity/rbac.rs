//! Roles (README, "Users, keys and roles"): `admin` may do everything, `viewer` may read
//! everything, `user` may read its own record, key metadata and quota, and rotate its own keys.

use super::model::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ListUsers,
    CreateUser,
    ReadUser,
    UpdateUser,
    DeleteUser,
    ListKeys,
    CreateKey,
    RotateKey,
    RevokeKey,
    ReadQuota,
    ResetQuota,
    ReadBackends,
    ReadMetrics,
    ReadAudit,
    ReadConfig,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::ListUsers,
        Action::CreateUser,
        Action::ReadUser,
        Action::UpdateUser,
        Action::DeleteUser,
        Action::ListKeys,
        Action::CreateKey,
        Action::RotateKey,
        Action::RevokeKey,
        Action::ReadQuota,
        Action::ResetQuota,
        Action::ReadBackends,
        Action::ReadMetrics,
        Action::ReadAudit,
        Action::ReadConfig,
    ];

    pub fn is_read(self) -> bool {
        use Action::*;
        matches!(
            self,
            ListUsers
                | ReadUser
                | ListKeys
                | ReadQuota
                | ReadBackends
                | ReadMetrics
                | ReadAudit
                | ReadConfig
        )
    }

    /// What a `user` may do to its own record.
    fn is_self_service(self) -> bool {
        use Action::*;
        matches!(self, ReadUser | ListKeys | ReadQuota | RotateKey)
    }
}

/// Whether `caller` (with `role`) may perform `action` on the user `target` (if any).
pub fn allows(role: Role, caller: &str, action: Action, target: Option<&str>) -> bool {
    match role {
        Role::Admin => true,
        Role::Viewer => action.is_read(),
        Role::User => action.is_self_service() && target == Some(caller),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// Every role × every action, on the caller's own record and on someone else's.
    #[test]
    fn the_role_table() {
        #[rustfmt::skip]
        let table: [(Action, [bool; 3], [bool; 3]); 15] = [
            //            admin viewer user  (own)       admin viewer user (other's)
            (ListUsers,    [true, true,  false],        [true, true,  false]),
            (CreateUser,   [true, false, false],        [true, false, false]),
            (ReadUser,     [true, true,  true ],        [true, true,  false]),
            (UpdateUser,   [true, false, false],        [true, false, false]),
            (DeleteUser,   [true, false, false],        [true, false, false]),
            (ListKeys,     [true, true,  true ],        [true, true,  false]),
            (CreateKey,    [true, false, false],        [true, false, false]),
            (RotateKey,    [true, false, true ],        [true, false, false]),
            (RevokeKey,    [true, false, false],        [true, false, false]),
            (ReadQuota,    [true, true,  true ],        [true, true,  false]),
            (ResetQuota,   [true, false, false],        [true, false, false]),
            (ReadBackends, [true, true,  false],        [true, true,  false]),
            (ReadMetrics,  [true, true,  false],        [true, true,  false]),
            (ReadAudit,    [true, true,  false],        [true, true,  false]),
            (ReadConfig,   [true, true,  false],        [true, true,  false]),
        ];
        assert_eq!(table.len(), Action::ALL.len());
        for (action, own, other) in table {
            for (i, role) in Role::ALL.into_iter().enumerate() {
                let target_own = match action {
                    ListUsers | CreateUser | ReadBackends | ReadMetrics | ReadAudit
                    | ReadConfig => None,
                    _ => Some("me"),
                };
                assert_eq!(
                    allows(role, "me", action, target_own),
                    own[i],
                    "{role:?} {action:?} own"
                );
                let target_other = target_own.map(|_| "someone");
                assert_eq!(
                    allows(role, "me", action, target_other),
                    other[i],
                    "{role:?} {action:?} other"
                );
            }
        }
    }
}
