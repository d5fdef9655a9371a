//! Who is calling: the authenticated principal and its role.

use serde::{Deserialize, Serialize};

/// A role grants a fixed set of rights; see `Role::can`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The whole installation: tenants, every tenant's objects.
    Admin,
    /// One tenant: its keys and everything a developer may do.
    Owner,
    /// Data, training, deploy within one tenant.
    Developer,
    /// Call the allowed models only.
    Inference,
}

/// What an operation needs. Every core operation declares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ManageTenants,
    ManageKeys,
    ReadData,
    WriteData,
    Train,
    Deploy,
    ReadModels,
    Infer,
    /// Pull, remove, load and unload models of the installation-wide library.
    ManageLibrary,
    /// Read, export and verify the audit log (admins: every tenant's; owners: their own).
    ReadAudit,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::ManageTenants,
        Permission::ManageKeys,
        Permission::ReadData,
        Permission::WriteData,
        Permission::Train,
        Permission::Deploy,
        Permission::ReadModels,
        Permission::Infer,
        Permission::ManageLibrary,
        Permission::ReadAudit,
    ];

    /// The name the API documents (`x-aiaas-permission` in /openapi.json).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageTenants => "manage_tenants",
            Permission::ManageKeys => "manage_keys",
            Permission::ReadData => "read_data",
            Permission::WriteData => "write_data",
            Permission::Train => "train",
            Permission::Deploy => "deploy",
            Permission::ReadModels => "read_models",
            Permission::Infer => "infer",
            Permission::ManageLibrary => "manage_library",
            Permission::ReadAudit => "read_audit",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Developer => "developer",
            Role::Inference => "inference",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            "developer" => Some(Role::Developer),
            "inference" => Some(Role::Inference),
            _ => None,
        }
    }

    /// The rights matrix: the single place where a role is turned into permissions.
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Owner => !matches!(permission, ManageTenants | ManageLibrary),
            Role::Developer => !matches!(
                permission,
                ManageTenants | ManageKeys | ManageLibrary | ReadAudit
            ),
            Role::Inference => matches!(permission, ReadModels | Infer),
        }
    }

    /// Rank used to stop a key minting a key more powerful than itself.
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Owner => 2,
            Role::Developer => 1,
            Role::Inference => 0,
        }
    }
}

/// The authenticated caller, passed to every core operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub tenant_id: String,
    pub role: Role,
    /// Models this key may call; `None` means every model of its tenant.
    pub allowed_models: Option<Vec<String>>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether an object owned by `tenant_id` is visible to this caller.
    pub fn sees_tenant(&self, tenant_id: &str) -> bool {
        self.is_admin() || self.tenant_id == tenant_id
    }

    pub fn may_call_model(&self, model_name: &str) -> bool {
        match &self.allowed_models {
            None => true,
            Some(list) => list.iter().any(|m| m == model_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_keys_cannot_train_or_deploy() {
        assert!(Role::Inference.can(Permission::Infer));
        assert!(!Role::Inference.can(Permission::Train));
        assert!(!Role::Inference.can(Permission::Deploy));
        assert!(!Role::Inference.can(Permission::WriteData));
    }

    #[test]
    fn only_admin_manages_tenants_and_developers_no_keys() {
        assert!(Role::Admin.can(Permission::ManageTenants));
        assert!(!Role::Owner.can(Permission::ManageTenants));
        assert!(Role::Owner.can(Permission::ManageKeys));
        assert!(Role::Admin.can(Permission::ManageLibrary));
        assert!(!Role::Owner.can(Permission::ManageLibrary));
        assert!(!Role::Developer.can(Permission::ManageLibrary));
        assert!(!Role::Developer.can(Permission::ManageKeys));
        assert!(Role::Developer.can(Permission::Train));
    }

    #[test]
    fn role_names_round_trip() {
        for r in [Role::Admin, Role::Owner, Role::Developer, Role::Inference] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
