//! Quota usage per user and period: requests and bandwidth counted, and which threshold events
//! (80/90/100 %) were already sent this period.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum Usage {
    Table,
    UserId,
    PeriodStart,
    Requests,
    BandwidthBytes,
    Announced,
    UpdatedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Usage::Table)
                    .if_not_exists()
                    .col(string_len(Usage::UserId, 64))
                    .col(timestamp_with_time_zone(Usage::PeriodStart))
                    .col(big_integer(Usage::Requests).default(0))
                    .col(big_integer(Usage::BandwidthBytes).default(0))
                    .col(integer(Usage::Announced).default(0))
                    .col(timestamp_with_time_zone(Usage::UpdatedAt))
                    .primary_key(Index::create().col(Usage::UserId).col(Usage::PeriodStart))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Usage::Table).to_owned())
            .await
    }
}
