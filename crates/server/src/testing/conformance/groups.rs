//! Group documents and subscriptions: the behaviour every metadata store
//! must show (cases run by [`metadata_conformance!`](crate::metadata_conformance)).

use std::sync::Arc;

use super::metadata::create;
use crate::metadata::{
    DeliveryNote, GroupOffsetCommit, GroupWrite, Metadata, MetadataError, SubscriptionRow,
    subscription_group,
};

fn at(topic_id: uuid::Uuid, offset: i64) -> GroupOffsetCommit {
    GroupOffsetCommit {
        topic_id,
        partition: 0,
        offset,
        metadata: None,
    }
}

/// A swap applies only at the version it read, with its commits; a stale
/// one writes nothing, commits included; deletion takes the offsets too.
pub async fn a_group_document_is_swapped_only_at_its_version(m: &Metadata) {
    let t = create(m, "docs", 1).await;
    let g = &m.members;
    let first = g.load_group("t1", "g").await.expect("load");
    assert_eq!((first.version, first.state.as_deref()), (None, None));
    assert!(first.now_ms > 1_600_000_000_000, "the store's clock");
    let won = g
        .swap_group("t1", "g", None, GroupWrite::Put("one"), &[at(t.id, 3)], 1)
        .await
        .expect("swap");
    assert!(won);
    let lost = g
        .swap_group("t1", "g", None, GroupWrite::Put("stale"), &[at(t.id, 9)], 2)
        .await
        .expect("swap");
    assert!(!lost, "a second create loses");
    let doc = g.load_group("t1", "g").await.expect("load");
    assert_eq!(doc.state.as_deref(), Some("one"));
    let offsets = m.groups.group_offsets("t1", "g").await.expect("offsets");
    assert_eq!(offsets[0].offset, 3, "the loser's commit was not stored");
    let v = doc.version.expect("a version");
    assert!(
        g.swap_group("t1", "g", Some(v), GroupWrite::Put("two"), &[], 3)
            .await
            .expect("swap")
    );
    assert!(
        !g.swap_group(
            "t1",
            "g",
            Some(v),
            GroupWrite::Put("three"),
            &[at(t.id, 7)],
            4
        )
        .await
        .expect("swap"),
        "a stale version loses"
    );
    assert!(
        !g.swap_group("t1", "g", Some(v), GroupWrite::Delete, &[], 5)
            .await
            .expect("swap")
    );
    let doc = g.load_group("t1", "g").await.expect("load");
    assert_eq!(doc.state.as_deref(), Some("two"));
    assert!(g.load_group("t2", "g").await.expect("load").state.is_none());
    let groups = m.groups.list_groups("t1", None, 10).await.expect("list");
    assert_eq!(groups, ["g"]);
    assert!(
        g.swap_group("t1", "g", doc.version, GroupWrite::Delete, &[], 6)
            .await
            .expect("swap")
    );
    assert!(g.load_group("t1", "g").await.expect("load").state.is_none());
    assert!(
        m.groups
            .group_offsets("t1", "g")
            .await
            .expect("offsets")
            .is_empty()
    );
    // A group known only by its document is listed.
    g.swap_group("t1", "only-doc", None, GroupWrite::Put("x"), &[], 7)
        .await
        .expect("swap");
    let groups = m.groups.list_groups("t1", None, 10).await.expect("list");
    assert_eq!(groups, ["only-doc"]);
}

/// Of writers that read one version, exactly one wins.
pub async fn concurrent_swaps_let_exactly_one_win(m: &Metadata) {
    let g = m.members.clone();
    g.swap_group("t1", "race", None, GroupWrite::Put("0"), &[], 1)
        .await
        .expect("swap");
    let v = g.load_group("t1", "race").await.expect("load").version;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                let doc = format!("{i}");
                g.swap_group("t1", "race", v, GroupWrite::Put(&doc), &[], 2)
                    .await
                    .expect("swap")
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("task"));
    }
    assert_eq!(wins, 1);
}

fn subscription(tenant: &str, name: &str) -> SubscriptionRow {
    SubscriptionRow {
        tenant: tenant.into(),
        name: name.into(),
        topic: "orders".into(),
        url: "https://hooks.example.com/x".into(),
        secret: "0123456789abcdef".into(),
        max_batch_records: 100,
        max_batch_wait_ms: 1000,
        max_attempts: 10,
        start_at: "latest".into(),
        paused: false,
        created_at_ms: 5,
        delivered: 0,
        failures: 0,
        dead_lettered: 0,
        last_error: None,
        last_error_at_ms: None,
    }
}

/// Subscriptions by tenant and name: created once, listed, paused,
/// counted, and deleted with their group's progress.
pub async fn subscriptions_are_kept_per_tenant(m: &Metadata) {
    let t = create(m, "orders", 1).await;
    let s = &m.subscriptions;
    s.create_subscription(&subscription("t1", "b"))
        .await
        .expect("create");
    s.create_subscription(&subscription("t1", "a"))
        .await
        .expect("create");
    s.create_subscription(&subscription("t2", "a"))
        .await
        .expect("create");
    let again = s.create_subscription(&subscription("t1", "a")).await;
    assert!(
        matches!(again, Err(MetadataError::AlreadyExists(_))),
        "{again:?}"
    );
    let got = s
        .get_subscription("t1", "a")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got, subscription("t1", "a"));
    let mine: Vec<_> = s
        .list_subscriptions(Some("t1"), None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(mine, ["a", "b"]);
    let page = s
        .list_subscriptions(Some("t1"), Some(("t1", "a")), 10)
        .await
        .expect("list");
    assert_eq!(page.len(), 1);
    let all = s.list_subscriptions(None, None, 10).await.expect("list");
    assert_eq!(all.len(), 3);
    // Every tenant's, a page at a time by (tenant, name).
    let page = s.list_subscriptions(None, None, 2).await.expect("list");
    let last = page.last().expect("a page");
    let next = s
        .list_subscriptions(None, Some((&last.tenant, &last.name)), 2)
        .await
        .expect("list");
    assert_eq!((next.len(), next[0].tenant.as_str()), (1, "t2"));
    assert!(
        s.set_subscription_paused("t1", "a", true)
            .await
            .expect("pause")
    );
    assert!(
        !s.set_subscription_paused("t1", "zz", true)
            .await
            .expect("pause")
    );
    s.note_delivery(
        "t1",
        "a",
        &DeliveryNote {
            delivered: 5,
            failures: 2,
            dead_lettered: 1,
            error: Some(("receiver answered 500".into(), 77)),
        },
    )
    .await
    .expect("note");
    s.note_delivery(
        "t1",
        "a",
        &DeliveryNote {
            delivered: 3,
            ..Default::default()
        },
    )
    .await
    .expect("note");
    let got = s
        .get_subscription("t1", "a")
        .await
        .expect("get")
        .expect("found");
    assert!(got.paused);
    assert_eq!((got.delivered, got.failures, got.dead_lettered), (8, 2, 1));
    assert_eq!(
        (got.last_error.as_deref(), got.last_error_at_ms),
        (Some("receiver answered 500"), Some(77)),
        "an error stays until the next one"
    );
    let group = subscription_group("a", 5);
    m.groups
        .commit_group_offsets("t1", &group, &[at(t.id, 4)], 1)
        .await
        .expect("commit");
    assert!(s.delete_subscription("t1", "a").await.expect("delete"));
    assert!(!s.delete_subscription("t1", "a").await.expect("delete"));
    assert!(s.get_subscription("t1", "a").await.expect("get").is_none());
    assert!(
        m.groups
            .group_offsets("t1", &group)
            .await
            .expect("offsets")
            .is_empty()
    );
    assert!(s.get_subscription("t2", "a").await.expect("get").is_some());
}
