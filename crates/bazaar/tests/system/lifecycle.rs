//! Stopping: a signalled launcher stops every process; a killed launcher's
//! processes stop by themselves.

use std::time::Duration;

use crate::procfs::ProcessId;
use bazaar::registry::SERVICES;
use nix::sys::signal::Signal;

use crate::harness::{EVENTUALLY, Fleet, eventually};

fn running(children: &[ProcessId]) -> Vec<u32> {
    children
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.pid)
        .collect()
}

#[tokio::test]
async fn sigterm_stops_every_process_and_exits_zero() {
    let mut fleet = Fleet::start().await;
    let children = fleet.children();
    assert_eq!(
        children.len(),
        SERVICES.len(),
        "children {children:?}\n{}",
        fleet.output()
    );

    fleet.signal(Signal::SIGTERM);
    let status = fleet.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "launcher exit: {status}\n{}",
        fleet.output()
    );
    // The launcher waits for its children, so none may be left.
    let left = running(&children);
    assert!(
        left.is_empty(),
        "still running after the launcher exited: {left:?}\n{}",
        fleet.output()
    );
    assert!(
        !fleet.output().contains("exited unexpectedly"),
        "a stopping process was taken for a crash:\n{}",
        fleet.output()
    );
}

#[tokio::test]
async fn a_killed_launcher_leaves_no_orphans() {
    let mut fleet = Fleet::start().await;
    let children = fleet.children();
    assert_eq!(
        children.len(),
        SERVICES.len(),
        "children {children:?}\n{}",
        fleet.output()
    );

    fleet.signal(Signal::SIGKILL);
    fleet.wait_exit(Duration::from_secs(10)).await;
    let gone = eventually(EVENTUALLY, || async {
        running(&children).is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "orphans still running {}s after the launcher was killed: {:?}",
        EVENTUALLY.as_secs(),
        running(&children)
    );
}
