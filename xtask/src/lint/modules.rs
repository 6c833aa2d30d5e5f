//! Module cycles: for every parent module, the graph of which child uses which (through `crate::` and
//! `super::` paths anywhere in a child's subtree, test code left out) must have no cycle.

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;

use super::source::{Crate, is_test_only};

/// The cycles of `krate`, one finding per cycle.
pub fn cycles(krate: &Crate) -> Vec<String> {
    let known: BTreeSet<Vec<String>> = krate.files.keys().cloned().collect();
    // Edges between modules (by full path), from every non-test file.
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for file in krate.files.values() {
        if krate.is_test(&file.module) {
            continue;
        }
        let mut paths = Paths {
            here: file.module.clone(),
            out: Vec::new(),
        };
        paths.visit_file(&file.ast);
        for target in paths.out {
            let Some(target) = longest_module(&known, &target) else {
                continue;
            };
            if !krate.is_test(&target) {
                edges.insert((file.module.clone(), target));
            }
        }
    }
    let mut findings = Vec::new();
    let parents: BTreeSet<Vec<String>> = known
        .iter()
        .filter_map(|m| m.split_last().map(|(_, p)| p.to_vec()))
        .collect();
    for parent in parents {
        // Children of `parent`, and which uses which (an edge anywhere inside their subtrees).
        let child_of = |m: &[String]| -> Option<String> {
            (m.len() > parent.len() && m.starts_with(&parent)).then(|| m[parent.len()].clone())
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &edges {
            if let (Some(a), Some(b)) = (child_of(from), child_of(to))
                && a != b
            {
                graph.entry(a).or_default().insert(b);
            }
        }
        for cycle in find_cycles(&graph) {
            let name = |c: &String| {
                let mut p = parent.clone();
                p.push(c.clone());
                p.join("::")
            };
            let text: Vec<String> = cycle.iter().map(name).collect();
            findings.push(format!(
                "module cycle in {}: {}",
                krate
                    .files
                    .get(&parent)
                    .map_or_else(|| "?".into(), |f| f.path.display().to_string()),
                text.join(" -> ")
            ));
        }
    }
    findings
}

/// The longest known module path that `path` starts with.
fn longest_module(known: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

/// One cycle per strongly connected component with more than one module (Tarjan's algorithm), each
/// closed with its first member.
fn find_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.reverse();
                    component.push(component[0].clone());
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Every `crate::…` and `super::…` path of a file, resolved to a crate-absolute path; test items skipped.
struct Paths {
    here: Vec<String>,
    out: Vec<Vec<String>>,
}

impl Paths {
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "super" => {
                let mut base = self.here.clone();
                let mut rest = rest;
                base.pop()?;
                while let Some((s, r)) = rest.split_first()
                    && s == "super"
                {
                    base.pop()?;
                    rest = r;
                }
                base.extend_from_slice(rest);
                Some(base)
            }
            "self" => {
                let mut base = self.here.clone();
                base.extend_from_slice(rest);
                Some(base)
            }
            _ => None,
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.push(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.push(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.push(prefix),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    fn push(&mut self, segments: &[String]) {
        if let Some(path) = self.resolve(segments) {
            self.out.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.push(&segments);
        syn::visit::visit_path(self, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_of_two_is_found_and_a_chain_is_not() {
        let g = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry((*a).into()).or_default().insert((*b).into());
            }
            g
        };
        assert!(find_cycles(&g(&[("http", "ingest"), ("ingest", "store")])).is_empty());
        let found = find_cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
        assert_eq!(found, vec![vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn super_paths_resolve_from_the_file_module() {
        let p = Paths {
            here: vec!["store".into(), "sqlite".into()],
            out: Vec::new(),
        };
        let s = |t: &[&str]| t.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            p.resolve(&s(&["super", "Store"])),
            Some(s(&["store", "Store"]))
        );
        assert_eq!(
            p.resolve(&s(&["crate", "ingest", "x"])),
            Some(s(&["ingest", "x"]))
        );
        assert_eq!(
            p.resolve(&s(&["super", "super", "alerts"])),
            Some(s(&["alerts"]))
        );
        assert_eq!(p.resolve(&s(&["std", "fs"])), None);
    }
}
