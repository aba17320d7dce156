//! The in-memory peer: XState v5's `actor.send` under node, on the same
//! six-state machine with a guard and an `assign`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Fallible;

const SCRIPT: &str = include_str!("xstate_bench.mjs");

/// What a run of the XState script reports.
pub struct Measured {
    pub ops_per_s: f64,
    pub versions: String,
}

/// Whether `program --version` runs, and what it says.
fn version(program: &str) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs the script `repeats` times for `budget` each. `Ok(Err(note))` when
/// node, npm or the package are not available.
pub fn run(cache: &Path, budget: Duration, repeats: usize) -> Fallible<Result<Measured, String>> {
    let Some(node) = version("node") else {
        return Ok(Err("skipped: node is not installed".to_owned()));
    };
    let installed = cache.join("node_modules/xstate/package.json");
    if !installed.exists() {
        if version("npm").is_none() {
            return Ok(Err("skipped: npm is not installed".to_owned()));
        }
        std::fs::create_dir_all(cache)?;
        eprintln!("installing xstate@5 into {} (once)", cache.display());
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(cache)
            .arg("xstate@5")
            .status()?;
        if !status.success() || !installed.exists() {
            return Ok(Err(format!(
                "skipped: `npm install xstate@5` failed ({status})"
            )));
        }
    }
    let package: serde_json::Value = serde_json::from_slice(&std::fs::read(&installed)?)?;
    let xstate = package["version"].as_str().unwrap_or("?").to_owned();
    let script = cache.join("xstate_bench.mjs");
    std::fs::write(&script, SCRIPT)?;
    let mut samples = Vec::new();
    for _ in 0..repeats {
        let output = Command::new("node")
            .arg(&script)
            .arg(budget.as_millis().to_string())
            .output()?;
        if !output.status.success() {
            return Ok(Err(format!(
                "skipped: the XState script failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        samples.push(report["ops_per_s"].as_f64().ok_or("no ops_per_s")?);
    }
    Ok(Ok(Measured {
        ops_per_s: crate::report::median(&samples).unwrap_or(0.0),
        versions: format!("node {node}, xstate {xstate}, samples {samples:.0?}"),
    }))
}
