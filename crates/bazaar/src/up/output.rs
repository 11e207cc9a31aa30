//! The launcher's standard output: every process's log lines, each prefixed
//! by its instance name in a fixed-width column, coloured per service on a
//! terminal, plus the launcher's own lines under `bazaar`.

use std::io::Write;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// The tag of the launcher's own lines.
pub const LAUNCHER: &str = "bazaar";

/// ANSI foreground colours, one per service in registry order (wrapping).
const PALETTE: &[&str] = &[
    "36", "33", "32", "35", "34", "96", "93", "92", "95", "94", "31",
];

/// A line longer than this is cut: a process that never writes a newline
/// must not grow the launcher without bound.
const MAX_LINE: usize = 64 * 1024;

/// Writes prefixed lines to standard output, one whole line at a time.
pub struct Output {
    width: usize,
    color: bool,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("width", &self.width)
            .field("color", &self.color)
            .finish()
    }
}

impl Output {
    /// Writes to standard output; `width` is the longest tag, `color` adds
    /// ANSI colours.
    pub fn new(width: usize, color: bool) -> Self {
        Self::to(Box::new(std::io::stdout()), width, color)
    }

    /// Writes to `sink` instead.
    pub fn to(sink: Box<dyn Write + Send>, width: usize, color: bool) -> Self {
        Self {
            width: width.max(LAUNCHER.len()),
            color,
            sink: Mutex::new(sink),
        }
    }

    /// The colour of service number `index`.
    pub fn service_color(index: usize) -> &'static str {
        PALETTE[index % PALETTE.len()]
    }

    /// One line under `tag`.
    pub fn line(&self, tag: &str, color: &str, text: &str) {
        let line = self.format(tag, color, text);
        self.raw(&line);
    }

    /// One line of the launcher's own.
    pub fn launcher(&self, text: &str) {
        // Bold, so the launcher's lines stand out among the services'.
        self.line(LAUNCHER, "1", text);
    }

    /// A line without prefix (the `ready:` line scripts wait for).
    pub fn raw(&self, line: &str) {
        // The lock keeps lines of concurrent writers whole. A closed stdout
        // is no reason to stop the fleet, so write errors are dropped.
        let mut out = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }

    fn format(&self, tag: &str, color: &str, text: &str) -> String {
        let width = self.width;
        if self.color {
            format!("\x1b[{color}m{tag:<width$} |\x1b[0m {text}")
        } else {
            format!("{tag:<width$} | {text}")
        }
    }

    /// Copies the lines of `reader` under `tag` until it ends.
    pub async fn pump(&self, reader: impl AsyncRead + Unpin, tag: &str, color: &str) {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            self.line(tag, color, text.trim_end_matches(['\n', '\r']));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_line_up() {
        let plain = Output::new(9, false);
        assert_eq!(
            plain.format("gateway-0", "36", "hello"),
            "gateway-0 | hello"
        );
        assert_eq!(plain.format("bazaar", "1", "hi"), "bazaar    | hi");
        let colored = Output::new(9, true);
        assert_eq!(
            colored.format("gateway-0", "36", "x"),
            "\x1b[36mgateway-0 |\x1b[0m x"
        );
    }

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn pump_prefixes_every_line_until_the_end() {
        let sink = Shared::default();
        let out = Output::to(Box::new(sink.clone()), 9, false);
        out.pump(&b"one\ntwo\r\nthree"[..], "gateway-0", "36").await;
        out.raw("ready: http://127.0.0.1:1");
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "gateway-0 | one\ngateway-0 | two\ngateway-0 | three\nready: http://127.0.0.1:1\n"
        );
    }
}
