//! Database migrations, date-stamped, applied on start and by `imgproxy-gateway migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_images;
mod m20261127_000001_create_identity;
mod m20261127_000002_create_usage;
mod m20261201_000001_audit_client_request_id;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_images::Migration),
            Box::new(m20261127_000001_create_identity::Migration),
            Box::new(m20261127_000002_create_usage::Migration),
            Box::new(m20261201_000001_audit_client_request_id::Migration),
        ]
    }
}
