//! The behaviour every `ObjectStore` implementation must show.
//!
//! Each store's tests call [`run`] on a fresh, empty store.

use bytes::Bytes;

use crate::store::{ObjectStore, StoreError};

/// Checks put/get/delete/list semantics on an empty store.
pub async fn run(store: &dyn ObjectStore) {
    let body = Bytes::from_static(b"0123456789abcdef");
    store.put("objects/a", body.clone()).await.expect("put");
    assert_eq!(
        store.put("objects/a", Bytes::from_static(b"other")).await,
        Err(StoreError::AlreadyExists("objects/a".into())),
        "put must never overwrite"
    );
    assert_eq!(
        store.get_range("objects/a", 0..16).await.expect("get"),
        body
    );
    assert_eq!(
        &store.get_range("objects/a", 4..8).await.expect("get")[..],
        b"4567"
    );
    assert_eq!(
        &store.get_range("objects/a", 10..100).await.expect("get")[..],
        b"abcdef"
    );
    // A body large enough to arrive in many pieces comes back whole and
    // in order, from the start, the middle and past the end.
    let big: Bytes = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.put("large/big", big.clone()).await.expect("put");
    for range in [0..3_000_000u64, 1_000_003..2_500_000, 2_999_000..4_000_000] {
        let end = range.end.min(3_000_000) as usize;
        assert_eq!(
            store
                .get_range("large/big", range.clone())
                .await
                .expect("get"),
            big.slice(range.start as usize..end),
            "range {range:?}"
        );
    }
    assert!(matches!(
        store.get_range("objects/missing", 0..1).await,
        Err(StoreError::NotFound(_))
    ));
    for i in 0..5 {
        store
            .put(&format!("objects/b{i}"), Bytes::from(vec![i as u8; i + 1]))
            .await
            .expect("put");
    }
    store
        .put("other/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    let page = store.list("objects/", None).await.expect("list");
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "objects/a",
            "objects/b0",
            "objects/b1",
            "objects/b2",
            "objects/b3",
            "objects/b4"
        ]
    );
    assert_eq!(page.objects[3].size, 3);
    let after = store
        .list("objects/", Some("objects/b2"))
        .await
        .expect("list");
    assert_eq!(after.objects.len(), 2);
    let outcome = store
        .delete_many(&[
            "objects/a".into(),
            "objects/b0".into(),
            "objects/never".into(),
        ])
        .await;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.deleted.len(), 3);
    assert!(matches!(
        store.get_range("objects/a", 0..1).await,
        Err(StoreError::NotFound(_))
    ));
    let page = store.list("objects/", None).await.expect("list");
    assert_eq!(page.objects.len(), 4);
}
