//! Status values shared by the `status` labels of every crate.

/// Label value of an operation that completed successfully.
pub const SUCCESS: &str = "success";
/// Label value of an operation that returned an error.
pub const ERROR: &str = "error";
/// Label value of an operation that panicked.
pub const PANIC: &str = "panic";
/// Label value of an operation whose future was dropped before it finished.
pub const CANCELLED: &str = "cancelled";

/// How an instrumented operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Finished with success.
    Success,
    /// Finished with an error.
    Error,
    /// Panicked; the panic carries on after it is recorded.
    Panic,
    /// Dropped before it finished.
    Cancelled,
}

impl Outcome {
    /// The `status` label value: `success`, `error`, `panic` or `cancelled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => SUCCESS,
            Self::Error => ERROR,
            Self::Panic => PANIC,
            Self::Cancelled => CANCELLED,
        }
    }
}

impl Outcome {
    /// The `error.type` of a span that ended so: `None` for a success, else the `status`
    /// label value (`error`, `panic`, `cancelled`).
    pub const fn error_type(self) -> Option<&'static str> {
        match self {
            Self::Success => None,
            _ => Some(self.as_str()),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values() {
        let all = [
            Outcome::Success,
            Outcome::Error,
            Outcome::Panic,
            Outcome::Cancelled,
        ];
        let labels: Vec<_> = all.iter().map(|o| o.to_string()).collect();
        assert_eq!(labels, ["success", "error", "panic", "cancelled"]);
    }
}
