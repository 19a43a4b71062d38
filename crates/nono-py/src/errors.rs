//! Python exceptions and error messages: an error and its causes on one line, as the CLI
//! prints them (`nono: {error:#}`).

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    nono_py,
    SandboxError,
    PyRuntimeError,
    "The sandbox could not be built or the command could not be started in it."
);

/// `error: cause: cause`, like anyhow's alternate form, which the CLI prints.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        // Transparent wrappers repeat their inner message; say each thing once.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A refused configuration.
pub fn value_error(e: &dyn std::error::Error) -> PyErr {
    PyValueError::new_err(chain(e))
}

/// A sandbox failure with nono's message.
pub fn sandbox_error(e: &dyn std::error::Error) -> PyErr {
    SandboxError::new_err(chain(e))
}
