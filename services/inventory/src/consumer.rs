//! Stock rows follow the catalog: created with a product's initial stock,
//! disabled when it is deleted. Runs in the subscription's transaction,
//! so the inbox row and these writes commit together.

use async_trait::async_trait;
use bazaar_bus::Envelope;
use bazaar_bus::Event as _;
use bazaar_bus::subscription::Handler;
use bazaar_events::catalog::{ProductCreated, ProductDeleted};
use sqlx::{Any, Transaction};

use crate::domain::OnHand;
use crate::store;

/// The topics inventory consumes.
pub(crate) const TOPICS: &[&str] = &[ProductCreated::TOPIC, ProductDeleted::TOPIC];

/// Handles catalog's product events.
pub(crate) struct CatalogEvents;

#[async_trait]
impl Handler for CatalogEvents {
    async fn handle(&self, tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()> {
        match event.topic.as_str() {
            ProductCreated::TOPIC => {
                let created: ProductCreated = event.decode()?;
                let units = created.initial_stock;
                let on_hand = OnHand::new(units)
                    .ok_or_else(|| anyhow::anyhow!("initial_stock {units} is negative"))?;
                if store::create_stock(tx, created.product_id, created.seller_id, on_hand).await? {
                    tracing::info!(product_id = %created.product_id, on_hand = units, "stock created");
                }
            }
            ProductDeleted::TOPIC => {
                let deleted: ProductDeleted = event.decode()?;
                store::delete_stock(tx, deleted.product_id, deleted.seller_id).await?;
                tracing::info!(product_id = %deleted.product_id, "stock disabled");
            }
            other => tracing::debug!(topic = other, "event ignored"),
        }
        Ok(())
    }
}
