//! Graphviz DOT output of a task graph, like `dask.visualize`.
//!
//! Tasks are grouped in one cluster per stage. Stages with many tasks are summarized: the first
//! and last few tasks are drawn and the rest stand behind one "... N more" node, with their
//! edges routed through it, so the picture of a 2,000-panel TSQR stays readable.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::graph::TaskGraph;
use super::op::Operation;

/// Tasks of a stage drawn individually at each end before the rest is summarized.
const SHOWN_PER_END: usize = 4;

impl<O: Operation> TaskGraph<O> {
    /// The graph in Graphviz DOT, one cluster per stage.
    pub fn to_dot(&self, title: &str) -> String {
        to_dot(self, title)
    }
}

fn to_dot<O: Operation>(graph: &TaskGraph<O>, title: &str) -> String {
    let tasks = graph.tasks();
    // Which node stands for each task: itself, or its stage's summary node.
    let mut node_of = vec![String::new(); tasks.len()];
    let mut out = String::new();
    let _ = writeln!(out, "digraph outcore {{");
    let _ = writeln!(out, "  label={:?}; labelloc=t; rankdir=BT; compound=true;", title);
    let _ = writeln!(out, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=Helvetica];");
    for (s, (stage, count)) in graph.stages().into_iter().enumerate() {
        let members: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].op.stage() == stage).collect();
        let _ = writeln!(out, "  subgraph cluster_{s} {{");
        let _ =
            writeln!(out, "    label=\"{} ({count} task{})\"; style=dashed;", stage, if count == 1 { "" } else { "s" });
        let summarize = members.len() > 2 * SHOWN_PER_END + 1;
        for (rank, &i) in members.iter().enumerate() {
            let shown = !summarize || rank < SHOWN_PER_END || rank >= members.len() - SHOWN_PER_END;
            if shown {
                node_of[i] = format!("t{i}");
                let _ = writeln!(out, "    t{i} [label={:?}];", tasks[i].op.label());
            } else {
                node_of[i] = format!("more{s}");
            }
        }
        if summarize {
            let hidden = members.len() - 2 * SHOWN_PER_END;
            let _ = writeln!(out, "    more{s} [label=\"... {hidden} more\", shape=note, fillcolor=\"#ffffff\"];");
        }
        let _ = writeln!(out, "  }}");
    }
    let mut edges = BTreeSet::new();
    for (i, task) in tasks.iter().enumerate() {
        for key in &task.inputs {
            let (from, to) = (&node_of[key.task.0], &node_of[i]);
            if from != to {
                edges.insert((from.clone(), to.clone()));
            }
        }
    }
    for (from, to) in edges {
        let _ = writeln!(out, "  {from} -> {to};");
    }
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::graph::tests::Step;

    /// Checks DOT text: with Graphviz's `dot` when installed, else structurally (balanced
    /// braces, every edge between declared nodes).
    pub(crate) fn assert_valid_dot(dot: &str) {
        use std::io::Write;
        if let Ok(mut child) = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            child.stdin.take().map(|mut s| s.write_all(dot.as_bytes())).transpose().unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "dot rejected the graph: {}", String::from_utf8_lossy(&out.stderr));
            return;
        }
        assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "unbalanced braces");
        let declared: std::collections::HashSet<&str> =
            dot.lines().filter_map(|l| l.trim().split_once(" [label=").map(|(n, _)| n)).collect();
        for line in dot.lines().filter(|l| l.contains(" -> ")) {
            let (from, to) = line.trim().trim_end_matches(';').split_once(" -> ").unwrap();
            assert!(declared.contains(from) && declared.contains(to), "edge {line} names an undeclared node");
        }
    }

    #[test]
    fn large_stages_are_summarized_and_edges_deduplicated() {
        let mut g = TaskGraph::new();
        let leaves: Vec<_> = (0..20).map(|i| g.add(Step("panel QR", i), vec![], 1, 0).unwrap()).collect();
        g.add(Step("reduce", 0), leaves.iter().map(|t| t.out(0)).collect(), 1, 0).unwrap();
        let dot = g.to_dot("test");
        assert!(dot.starts_with("digraph outcore {") && dot.trim_end().ends_with('}'));
        assert!(dot.contains("... 12 more"), "{dot}");
        assert!(dot.contains("panel QR (20 tasks)"));
        assert_eq!(dot.matches("more0 -> t20;").count(), 1, "{dot}");
        assert_eq!(dot.matches(" -> ").count(), 9, "8 shown leaves and the summary feed the reduction: {dot}");
        assert_valid_dot(&dot);
    }
}
