//! Webhook subscriptions as stored: what to deliver where, whether it is
//! paused, and delivery counters any agent adds to.

use async_trait::async_trait;

use super::MetadataError;

/// The group holding a subscription's progress: a name no client group can
/// have (client group names have no `:`), and one per incarnation, so a
/// subscription deleted and made again under its name starts afresh and
/// a worker of the old one cannot join the new one's group.
pub fn subscription_group(name: &str, created_at_ms: i64) -> String {
    format!("subscription:{name}:{created_at_ms}")
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub tenant: String,
    pub name: String,
    pub topic: String,
    pub url: String,
    /// The HMAC key deliveries are signed with.
    pub secret: String,
    pub max_batch_records: i32,
    pub max_batch_wait_ms: i64,
    pub max_attempts: i32,
    /// `earliest` or `latest`: where delivery starts in a partition the
    /// subscription has no offset for.
    pub start_at: String,
    pub paused: bool,
    pub created_at_ms: i64,
    pub delivered: i64,
    pub failures: i64,
    pub dead_lettered: i64,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<i64>,
}

/// What one delivery attempt adds to a subscription's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryNote {
    pub delivered: i64,
    pub failures: i64,
    pub dead_lettered: i64,
    /// The failure to report, with its time.
    pub error: Option<(String, i64)>,
}

/// Subscriptions by tenant and name.
#[async_trait]
pub trait Subscriptions: Send + Sync + std::fmt::Debug {
    /// `AlreadyExists` if the tenant has one by that name.
    async fn create_subscription(&self, s: &SubscriptionRow) -> Result<(), MetadataError>;

    async fn get_subscription(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<SubscriptionRow>, MetadataError>;

    /// Subscriptions in (tenant, name) order after `after` (a tenant and a
    /// name), at most `limit`: one tenant's, or every tenant's when
    /// `tenant` is `None` (the delivery loop).
    async fn list_subscriptions(
        &self,
        tenant: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SubscriptionRow>, MetadataError>;

    /// Pauses or resumes; false if there is no such subscription.
    async fn set_subscription_paused(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
    ) -> Result<bool, MetadataError>;

    /// Deletes it (its group's offsets too); false if there was none.
    async fn delete_subscription(&self, tenant: &str, name: &str) -> Result<bool, MetadataError>;

    /// Adds to its counters and records the last error, if any.
    async fn note_delivery(
        &self,
        tenant: &str,
        name: &str,
        note: &DeliveryNote,
    ) -> Result<(), MetadataError>;
}
