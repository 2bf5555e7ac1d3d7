//! The audit log keeps the gateway's own request id in `request_id` and the client's
//! `X-Request-ID` beside it, so no client can choose the id an audit entry is found by.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    ClientRequestId,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditLog::Table)
                    .add_column(string_len_null(AuditLog::ClientRequestId, 128))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditLog::Table)
                    .drop_column(AuditLog::ClientRequestId)
                    .to_owned(),
            )
            .await
    }
}
