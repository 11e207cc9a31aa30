//! When to stop: SIGTERM, SIGINT, or (for processes the launcher started)
//! standard input closing because the launcher is gone.

use tokio::sync::oneshot;

/// Resolves when the process should shut down gracefully.
///
/// With `watch_stdin`, end-of-file on standard input also counts: the
/// launcher keeps a pipe to every child's stdin open, so when the launcher
/// dies for any reason — even SIGKILL — its children see EOF and exit
/// instead of living on as orphans.
pub async fn signal(watch_stdin: bool) -> &'static str {
    let stdin_closed = async {
        if !watch_stdin {
            return std::future::pending().await;
        }
        let (tx, rx) = oneshot::channel();
        // A plain thread, not spawn_blocking: a read blocked on stdin must
        // never hold up the runtime's own shutdown.
        std::thread::Builder::new()
            .name("stdin-watch".into())
            .spawn(move || {
                use std::io::Read;
                let mut stdin = std::io::stdin();
                let mut buf = [0u8; 256];
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let _ = tx.send(());
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot watch stdin"));
        let _ = rx.await;
    };

    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = stdin_closed => "stdin closed",
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            () = stdin_closed => "stdin closed",
        }
    }
}
