//! Fault trials in the suite (a few; `cargo bench -p capstan-cli --bench fault_trials` runs
//! many): `capstan apply` and `capstan agent` killed with SIGKILL at random points of an
//! apply, the API server restarted mid-apply, the Git server stopped mid-fetch; after each,
//! a run to completion converges with the inventory equal to the live objects and another
//! field manager's objects and fields untouched.

use std::path::Path;

use capstan_testbed::trials::{Fault, FaultTrials};
use capstan_testbed::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_applies_converge_without_orphans_or_losses() {
    let Some(cluster) = TestCluster::start("faults") else {
        return;
    };
    let mut trials =
        FaultTrials::new(&cluster, Path::new(env!("CARGO_BIN_EXE_capstan")), 120, 11).await;
    for fault in [
        Fault::KillApply,
        Fault::KillApply,
        Fault::KillApply,
        Fault::KillApply,
        Fault::KillApply,
        Fault::RestartApiServer,
        Fault::StopGitMidFetch,
        Fault::KillAgent,
    ] {
        trials.run(fault).await;
    }
    let report = &trials.report;
    eprintln!("{report}");
    assert!(
        report.failures.is_empty(),
        "{report}\n{}",
        report.failures.join("\n")
    );
    assert_eq!(report.converged, report.trials);
}
