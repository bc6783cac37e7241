//! The log lines of a test, as text: what a bot author would read in their terminal.
//!
//! ```
//! let logs = botscope_testkit::logs::Logs::default();
//! {
//!     let _capture = logs.capture();
//!     tracing::warn!(route = "/users/@me", "held");
//! }
//! assert!(logs.text().contains("WARN"));
//! assert!(logs.text().contains(r#"route="/users/@me""#));
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;

/// Every log line written while a [`capture`](Self::capture) guard lived, as the `fmt`
/// subscriber writes them (no colours). Clones share the lines.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Sends this thread's log lines here until the guard drops. Under
    /// `#[tokio::test]` (a current-thread runtime) that is every task of the test.
    pub fn capture(&self) -> DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The lines so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
