//! Mistakes on the command line or in the environment fail at once, with a
//! message that says what is wrong.

use bazaar::registry::SERVICES;

use crate::harness::{free_port, run_bazaar};

#[test]
fn serve_with_a_bad_listen_address_fails_with_one_line() {
    let out = run_bazaar(&["serve", "gateway"], &[("BAZAAR_LISTEN", "nonsense")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}", out.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].contains("BAZAAR_LISTEN"), "{stderr}");
}

#[test]
fn serve_an_unknown_service_lists_the_known_ones() {
    let out = run_bazaar(&["serve", "nosuch"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}", out.status);
    assert!(stderr.contains("nosuch"), "{stderr}");
    for service in SERVICES {
        assert!(
            stderr.contains(service.name),
            "{} not listed:\n{stderr}",
            service.name
        );
    }
}

#[test]
fn up_with_replicas_of_an_unknown_service_fails() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = free_port().to_string();
    let data_dir = dir.path().to_str().expect("utf-8 path");
    let out = run_bazaar(
        &[
            "up",
            "--data-dir",
            data_dir,
            "--port",
            &port,
            "--replicas",
            "nosuch=2",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}", out.status);
    assert!(stderr.contains("nosuch"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready:"));
}

#[test]
fn up_refuses_a_busy_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_str().expect("utf-8 path");
    let out = run_bazaar(&["up", "--data-dir", data_dir, "--port", &port], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}", out.status);
    assert!(
        stderr.contains(&port) && stderr.contains("--port"),
        "{stderr}"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = run_bazaar(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "up",
        "serve",
        "bench",
        "--replicas",
        "--postgres",
        "--no-seed",
    ] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
    let out = run_bazaar(&["serve", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("BAZAAR_LISTEN") && help.contains("BAZAAR_EXIT_ON_STDIN_CLOSE"),
        "{help}"
    );
}
