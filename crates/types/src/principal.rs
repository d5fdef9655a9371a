//! Who is calling: the authenticated principal and its role.

use serde::{Deserialize, Serialize};

/// A role grants a fixed set of rights; see `Role::can`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Read `/metrics` only: for scrapers. Metric labels name every tenant's models, so
    /// only admins mint these keys.
    Metrics,
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
    /// Read the Prometheus metrics of the whole installation (`/metrics`).
    ReadMetrics,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
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
        Permission::ReadMetrics,
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
            Permission::ReadMetrics => "read_metrics",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Owner,
        Role::Developer,
        Role::Inference,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Developer => "developer",
            Role::Inference => "inference",
            Role::Metrics => "metrics",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The rights matrix: the single place where a role is turned into permissions.
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            // Metrics span every tenant: an owner's view stops at its own.
            Role::Owner => !matches!(permission, ManageTenants | ManageLibrary | ReadMetrics),
            Role::Developer => !matches!(
                permission,
                ManageTenants | ManageKeys | ManageLibrary | ReadAudit | ReadMetrics
            ),
            Role::Inference => matches!(permission, ReadModels | Infer),
            Role::Metrics => matches!(permission, ReadMetrics),
        }
    }

    /// Rank used to stop a key minting a key more powerful than itself. A metrics key
    /// reads what spans every tenant, so it ranks with admins: only they mint or revoke it.
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin | Role::Metrics => 3,
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
    fn only_admin_and_metrics_keys_read_metrics() {
        for role in Role::ALL {
            let reads = matches!(role, Role::Admin | Role::Metrics);
            assert_eq!(role.can(Permission::ReadMetrics), reads, "{role:?}");
        }
        for permission in Permission::ALL {
            let only_metrics = permission == Permission::ReadMetrics;
            assert_eq!(
                Role::Metrics.can(permission),
                only_metrics,
                "{permission:?}"
            );
        }
        assert!(
            Role::Metrics.rank() > Role::Owner.rank(),
            "owners cannot mint one"
        );
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
