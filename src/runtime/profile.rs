//! Reading an ONNX Runtime profile (the JSON trace `with_profiling` writes) for where kernels really ran.
//!
//! This is the strongest check available of "the UNet runs on CUDA": registration and even a CUDA allocator only
//! show the provider came up, while the trace has one event per executed kernel with the provider that ran it.

use std::collections::BTreeMap;
use std::path::Path;

/// Executed kernels per provider, and per operator type within each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub by_provider: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Placement {
    pub fn kernels_on(&self, provider: &str) -> usize {
        self.by_provider
            .get(provider)
            .map_or(0, |ops| ops.values().sum())
    }

    pub fn total(&self) -> usize {
        self.by_provider.values().flat_map(|ops| ops.values()).sum()
    }

    /// "412 on CUDAExecutionProvider, 31 on CPUExecutionProvider (Shape 20, Gather 11)"
    pub fn summary(&self) -> String {
        let mut parts: Vec<(usize, String)> = self
            .by_provider
            .iter()
            .map(|(p, ops)| {
                let n: usize = ops.values().sum();
                let mut top: Vec<_> = ops.iter().collect();
                top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let detail: Vec<String> = top
                    .iter()
                    .take(4)
                    .map(|(op, c)| format!("{op} {c}"))
                    .collect();
                (n, format!("{n} on {p} ({})", detail.join(", ")))
            })
            .collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.0));
        parts
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts the "Node" events of a profile. Each executed kernel appears once per run; `runs` of the same graph
/// divide out, so pass the number of runs the trace covers.
pub fn read_placement(path: &Path, runs: usize) -> Result<Placement, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read profile {}: {e}", path.display()))?;
    parse_placement(&text, runs).map_err(|e| format!("profile {}: {e}", path.display()))
}

pub fn parse_placement(text: &str, runs: usize) -> Result<Placement, String> {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON trace: {e}"))?;
    let mut p = Placement::default();
    for ev in &events {
        if ev.get("cat").and_then(|c| c.as_str()) != Some("Node") {
            continue;
        }
        // Each kernel also has *_fence_before/after events; only *_kernel_time is the execution.
        if !ev
            .get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n.ends_with("_kernel_time"))
        {
            continue;
        }
        let args = ev.get("args");
        let field = |k: &str| {
            args.and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let (Some(provider), Some(op)) = (field("provider"), field("op_name")) else {
            continue;
        };
        *p.by_provider
            .entry(provider)
            .or_default()
            .entry(op)
            .or_default() += 1;
    }
    let runs = runs.max(1);
    for ops in p.by_provider.values_mut() {
        for c in ops.values_mut() {
            *c = c.div_ceil(runs);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kernel_events_only() {
        let trace = r#"[
          {"cat":"Session","name":"model_loading_uri","args":{}},
          {"cat":"Node","name":"conv_fence_before","args":{"op_name":"Conv","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"conv_kernel_time","args":{"op_name":"Conv","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"mm_kernel_time","args":{"op_name":"MatMul","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"shape_kernel_time","args":{"op_name":"Shape","provider":"CPUExecutionProvider"}}
        ]"#;
        let p = parse_placement(trace, 1).unwrap();
        assert_eq!(p.kernels_on("CUDAExecutionProvider"), 2);
        assert_eq!(p.kernels_on("CPUExecutionProvider"), 1);
        assert_eq!(p.total(), 3);
        assert_eq!(
            p.summary(),
            "2 on CUDAExecutionProvider (Conv 1, MatMul 1), 1 on CPUExecutionProvider (Shape 1)"
        );
    }

    #[test]
    fn rejects_non_json() {
        assert!(
            parse_placement("not json", 1)
                .unwrap_err()
                .starts_with("not a JSON trace")
        );
    }
}
