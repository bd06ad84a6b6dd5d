//! Hole 8 of issue 9: a bootstrap claim nobody finishes must not stall the cluster forever
//! (src/ha/bootstrap_claim.rs).

use super::*;

/// A bootstrap claim is pending (`initialize` holds `""`).
fn claim_pending(sim: &Sim) -> bool {
    sim.world
        .store
        .local_entry(&Key::Initialize)
        .is_some_and(|e| e.value.as_str() == Some(""))
}

fn published(sim: &Sim) -> bool {
    sim.world
        .store
        .local_entry(&Key::Initialize)
        .is_some_and(|e| e.value.as_str() == Some(SYSID))
}

/// Every member's first write of `initialize` applies but its reply is lost: the winner
/// heard "unconfirmed", the others too. Before: the claim (`""`) stayed, everyone waited
/// "for the member that claimed the bootstrap to finish it", forever. Now the claimer
/// recognises its own claim (name and address) on the next cycle and bootstraps.
#[tokio::test(start_paused = true)]
async fn a_claim_whose_reply_was_lost_is_finished_by_its_claimer() {
    let sim = Sim::new(&["m1", "m2", "m3"]);
    {
        let mut s = sim.world.lock();
        for f in s.faults.values_mut() {
            f.lost_initialize_replies = 1;
        }
    }
    let formed = sim
        .run_until(Duration::from_secs(60), |s| s.healthy() && published(s))
        .await;
    assert!(formed, "the bootstrap stalled: {}", sim.report());
    sim.assert_clean();
    sim.shutdown().await;
}

/// The claimer is cut off from the keyspace right after it claimed: its bootstrap cannot
/// be published, and its claim is not refreshed. Before: the others waited forever. Now the
/// claim expires (3 × ttl) and another member bootstraps; the cut-off member stopped the
/// server its bootstrap started (it cannot confirm the keyspace) and never served writes
/// beside the new primary.
#[tokio::test(start_paused = true)]
async fn a_claim_its_claimer_cannot_finish_expires_and_another_member_bootstraps() {
    let sim = Sim::new(&["m1", "m2", "m3"]);
    // m1 claims: the others cannot reach the keyspace for the first 2 s.
    {
        let mut s = sim.world.lock();
        for n in ["m2", "m3"] {
            s.faults.get_mut(n).expect("member").unreachable_until = 2_000;
        }
    }
    let claimed = sim.run_until(Duration::from_secs(2), claim_pending).await;
    assert!(claimed, "m1 did not claim the bootstrap: {}", sim.report());
    let now = sim.world.now_ms();
    sim.world
        .lock()
        .faults
        .get_mut("m1")
        .expect("member")
        .unreachable_until = now + 600_000;
    let cut = "m1";
    let other_primary = |s: &Sim| {
        let w = s.writable();
        w.len() == 1 && w[0] != cut && s.world.holds_lease(&w[0]) && published(s)
    };
    let took_over = sim.run_until(Duration::from_secs(90), other_primary).await;
    assert!(
        took_over,
        "nobody bootstrapped after the claim of {cut} went stale: {}",
        sim.report()
    );
    assert!(!sim.pg(cut).writable, "{}", sim.report());
    sim.run_for(Duration::from_secs(5)).await;
    sim.assert_clean();
    sim.shutdown().await;
}

/// Brief 1 of issue 9's last holes: the claimer is cut off while its bootstrap's PostgreSQL
/// runs writable (initdb done, roles and `post_bootstrap` still running). Its claim expires
/// and another member bootstraps. Before: the bootstrap job kept the claimer's writable
/// server running (no lease deadline armed any fence, and the loop decides nothing while a
/// job runs): two writable primaries. Now the claim's deadline arms the fences as a lease's
/// does, and the loop stops the server before the claim can expire.
#[tokio::test(start_paused = true)]
async fn a_cut_off_claimer_stops_its_bootstrap_server_before_its_claim_expires() {
    let sim = Sim::new(&["m1", "m2", "m3"]);
    {
        let mut s = sim.world.lock();
        for n in ["m2", "m3"] {
            s.faults.get_mut(n).expect("member").unreachable_until = 2_000;
        }
        s.faults.get_mut("m1").expect("member").post_bootstrap_ms = 600_000;
    }
    let cut = "m1";
    let serving = sim
        .run_until(Duration::from_secs(2), |s| s.writable() == vec![cut.to_string()])
        .await;
    assert!(
        serving,
        "m1's bootstrap did not start its server: {}",
        sim.report()
    );
    let now = sim.world.now_ms();
    sim.world
        .lock()
        .faults
        .get_mut(cut)
        .expect("member")
        .unreachable_until = now + 600_000;
    // Another member serves as the bootstrapped primary (whether or not m1 still does: the
    // invariant checker reports two writable servers).
    let other_primary =
        |s: &Sim| s.writable().iter().any(|w| w != cut && s.world.holds_lease(w)) && published(s);
    let took_over = sim.run_until(Duration::from_secs(90), other_primary).await;
    sim.run_for(Duration::from_secs(5)).await;
    sim.assert_clean();
    assert!(
        took_over,
        "nobody bootstrapped after the claim of {cut} went stale: {}",
        sim.report()
    );
    assert!(!sim.pg(cut).writable, "{}", sim.report());
    sim.shutdown().await;
}
