//! Fault trials, many of them, with the report printed (the suite runs a few in
//! tests/faults.rs): `capstan apply` SIGKILLed at random points of an apply, `capstan agent`
//! SIGKILLed and restarted on a newer revision, the API server restarted mid-apply, the Git
//! server stopped mid-fetch. After every trial a run to completion must converge with the
//! inventory equal to the live objects, nothing lost and another field manager's objects
//! and fields untouched. Prints the tally per fault and in total; exits 1 if any trial did
//! not converge cleanly.
//!
//!     cargo bench -p capstan-cli --bench fault_trials                 # 40 + 10 + 10 + 10 trials
//!     cargo bench -p capstan-cli --bench fault_trials -- 400 5 2 2 2  # objects, then counts

use std::path::Path;
use std::time::Instant;

use capstan_testbed::trials::{Fault, FaultTrials};
use capstan_testbed::TestCluster;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let objects = args.first().copied().unwrap_or(300);
    let counts = [
        (Fault::KillApply, args.get(1).copied().unwrap_or(40)),
        (Fault::KillAgent, args.get(2).copied().unwrap_or(10)),
        (Fault::RestartApiServer, args.get(3).copied().unwrap_or(10)),
        (Fault::StopGitMidFetch, args.get(4).copied().unwrap_or(10)),
    ];
    let Some(cluster) = TestCluster::start("fault-trials") else {
        eprintln!("fault_trials: no test bed (scripts/test-cluster setup)");
        return;
    };
    let started = Instant::now();
    let mut trials = FaultTrials::new(
        &cluster,
        Path::new(env!("CARGO_BIN_EXE_capstan")),
        objects,
        20261207,
    )
    .await;
    println!(
        "fault trials: {objects} ConfigMaps per revision, an uninterrupted apply takes {:.2} s",
        trials.apply_time().as_secs_f64()
    );
    let mut ok = true;
    for (fault, n) in counts {
        let before = trials.report.clone();
        for _ in 0..n {
            trials.run(fault).await;
        }
        let r = &trials.report;
        println!(
            "{fault:?}: trials {}, converged {}, orphans {}, lost {}, foreign touched {}",
            r.trials - before.trials,
            r.converged - before.converged,
            r.orphans - before.orphans,
            r.lost - before.lost,
            r.foreign_touched - before.foreign_touched
        );
        ok &= r.failures.len() == before.failures.len();
    }
    println!(
        "total: {} ({:.0} s)",
        trials.report,
        started.elapsed().as_secs_f64()
    );
    for f in &trials.report.failures {
        println!("  {f}");
    }
    if !ok {
        std::process::exit(1);
    }
}
