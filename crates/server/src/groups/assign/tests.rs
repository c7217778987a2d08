use super::*;

fn member(id: &str, topics: &[&str]) -> Member {
    Member {
        id: id.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        session_timeout_ms: 10_000,
        expires_at_ms: 10_000,
        joined_at_ms: 0,
        reset: Reset::Earliest,
        acked: 0,
        told: 0,
        epoch: 0,
    }
}

fn topics(list: &[(&str, i32)]) -> HashMap<String, TopicInfo> {
    list.iter()
        .enumerate()
        .map(|(i, (name, partitions))| {
            (
                name.to_string(),
                TopicInfo {
                    id: Uuid::from_u128(i as u128 + 1),
                    partitions: *partitions,
                },
            )
        })
        .collect()
}

fn loads(s: &GroupState) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in &s.owners {
        *out.entry(o.member.clone()).or_insert(0) += 1;
    }
    out
}

/// Acknowledges the current generation for every member and rebalances.
fn ack_all(s: &mut GroupState, t: &HashMap<String, TopicInfo>) {
    let g = s.generation;
    for m in &mut s.members {
        m.acked = g;
    }
    s.rebalance(t, false, 0);
}

#[test]
fn three_members_share_ten_partitions_evenly_and_disjointly() {
    let t = topics(&[("a", 10)]);
    let mut s = GroupState::default();
    for id in ["m1", "m2", "m3"] {
        s.add(member(id, &["a"]));
        s.rebalance(&t, true, 0);
    }
    ack_all(&mut s, &t);
    assert_eq!(s.owners.len(), 10);
    assert!(s.owners.iter().all(|o| o.moving_to.is_none()));
    let mut counts: Vec<usize> = loads(&s).into_values().collect();
    counts.sort();
    assert_eq!(counts, vec![3, 3, 4]);
}

#[test]
fn a_partition_moves_only_after_its_owner_acknowledges() {
    let t = topics(&[("a", 4)]);
    let mut s = GroupState::default();
    s.add(member("m1", &["a"]));
    s.rebalance(&t, true, 0);
    assert_eq!(loads(&s)["m1"], 4);
    let g1 = s.generation;
    s.add(member("m2", &["a"]));
    s.rebalance(&t, true, 0);
    assert!(s.generation > g1);
    // Two partitions are leaving m1 but still owned by it.
    let (owned, revoking) = s.assignment_of("m1");
    assert_eq!((owned.len(), revoking.len()), (2, 2));
    assert!(s.assignment_of("m2").0.is_empty());
    // Nothing changes until m1 acknowledges.
    let g2 = s.generation;
    s.rebalance(&t, false, 0);
    assert_eq!(s.generation, g2);
    s.member_mut("m1").unwrap().acked = g2;
    s.rebalance(&t, false, 0);
    assert!(s.generation > g2);
    assert_eq!(s.assignment_of("m1").0.len(), 2);
    assert_eq!(s.assignment_of("m2").0.len(), 2);
    assert!(s.owners.iter().all(|o| o.moving_to.is_none()));
}

#[test]
fn an_expired_member_frees_its_partitions_at_once() {
    let t = topics(&[("a", 6)]);
    let mut s = GroupState::default();
    for id in ["m1", "m2", "m3"] {
        s.add(member(id, &["a"]));
    }
    s.rebalance(&t, true, 0);
    s.member_mut("m2").unwrap().expires_at_ms = 5;
    assert!(s.expire(6));
    s.rebalance(&t, true, 0);
    assert_eq!(s.owners.len(), 6);
    assert!(s.owners.iter().all(|o| o.member != "m2"));
    assert_eq!(loads(&s).into_values().collect::<Vec<_>>(), vec![3, 3]);
}

#[test]
fn sticky_partitions_stay_where_balance_allows() {
    let t = topics(&[("a", 6)]);
    let mut s = GroupState::default();
    for id in ["m1", "m2", "m3"] {
        s.add(member(id, &["a"]));
    }
    s.rebalance(&t, true, 0);
    let before: HashMap<i32, String> = s
        .owners
        .iter()
        .map(|o| (o.partition, o.member.clone()))
        .collect();
    s.remove("m3");
    s.rebalance(&t, true, 0);
    // Partitions of m1 and m2 did not move.
    for o in &s.owners {
        if before[&o.partition] != "m3" {
            assert_eq!(o.member, before[&o.partition]);
        }
    }
}

#[test]
fn members_of_different_topics_get_only_their_topics() {
    let t = topics(&[("a", 2), ("b", 3)]);
    let mut s = GroupState::default();
    s.add(member("m1", &["a"]));
    s.add(member("m2", &["a", "b"]));
    s.add(member("m3", &["b"]));
    s.rebalance(&t, true, 0);
    ack_all(&mut s, &t);
    for o in &s.owners {
        let m = s.member(&o.member).unwrap();
        assert!(m.topics.contains(&o.topic));
    }
    assert_eq!(s.owners.len(), 5);
}

#[test]
fn a_deleted_topic_loses_its_owners() {
    let mut t = topics(&[("a", 2), ("b", 2)]);
    let mut s = GroupState::default();
    s.add(member("m1", &["a", "b"]));
    s.rebalance(&t, true, 0);
    t.remove("b");
    let g = s.generation;
    s.rebalance(&t, false, 0);
    assert!(s.generation > g);
    assert!(s.owners.iter().all(|o| o.topic == "a"));
}

#[test]
fn the_same_members_give_the_same_assignment() {
    let t = topics(&[("a", 7), ("b", 5)]);
    let build = |order: &[&str]| {
        let mut s = GroupState::default();
        for id in order {
            s.add(member(id, &["a", "b"]));
        }
        s.rebalance(&t, true, 0);
        s.owners
            .iter()
            .map(|o| (o.topic.clone(), o.partition, o.member.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(build(&["x", "y", "z"]), build(&["z", "x", "y"]));
}

#[test]
fn no_generation_has_two_owners_of_a_partition() {
    // Members come and go in a fixed pattern; after every step, each
    // partition has exactly one owner, and an owner that changed did so in
    // a new generation.
    let t = topics(&[("a", 8)]);
    let mut s = GroupState::default();
    let mut seen: HashMap<(i32, i64), String> = HashMap::new();
    let ids = ["m1", "m2", "m3", "m4"];
    for step in 0..40 {
        let id = ids[step % ids.len()];
        if step % 3 == 0 && s.member(id).is_some() {
            s.remove(id);
            s.rebalance(&t, true, 0);
        } else if s.member(id).is_none() {
            s.add(member(id, &["a"]));
            s.rebalance(&t, true, 0);
        } else {
            let g = s.generation;
            s.member_mut(id).unwrap().acked = g;
            s.rebalance(&t, false, 0);
        }
        for o in &s.owners {
            if o.moving_to.is_some() {
                continue;
            }
            let prev = seen.insert((o.partition, s.generation), o.member.clone());
            assert!(prev.is_none_or(|p| p == o.member));
        }
    }
}

#[test]
fn an_owner_that_never_acknowledges_lets_go_after_its_session() {
    let t = topics(&[("a", 2)]);
    let mut s = GroupState::default();
    s.add(member("m1", &["a"]));
    s.rebalance(&t, true, 0);
    s.add(member("m2", &["a"]));
    s.rebalance(&t, true, 1_000);
    assert_eq!(s.assignment_of("m1").1.len(), 1, "one partition is moving");
    s.rebalance(&t, false, 10_999);
    assert_eq!(s.assignment_of("m2").0.len(), 0, "not before the session");
    s.rebalance(&t, false, 11_000);
    assert_eq!(s.assignment_of("m2").0.len(), 1, "after m1's 10 s session");
}
