//! A crate's sources as modules: every `.rs` file under `src/` parsed once, with its module path, and the
//! modules declared `#[cfg(test)]` marked so the checks can leave them out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One source file.
pub struct File {
    /// Path relative to the workspace root.
    pub path: PathBuf,
    /// Module path inside the crate (`[]` for the crate root).
    pub module: Vec<String>,
    /// The parsed file.
    pub ast: syn::File,
}

/// A crate's files, by module path.
pub struct Crate {
    /// Files by module path.
    pub files: BTreeMap<Vec<String>, File>,
    /// Modules declared under `#[cfg(test)]` (and everything below them).
    pub test_modules: Vec<Vec<String>>,
}

impl Crate {
    /// Parses every `.rs` file under `root/dir`.
    pub fn load(root: &Path, dir: &Path) -> anyhow::Result<Crate> {
        let mut files = BTreeMap::new();
        let mut paths = Vec::new();
        collect(&root.join(dir), &mut paths)?;
        // With a library, `main.rs` is a binary crate of its own that uses the library from outside.
        if paths.iter().any(|p| p == &root.join(dir).join("lib.rs")) {
            paths.retain(|p| p != &root.join(dir).join("main.rs"));
        }
        for path in paths {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
            let inside = path.strip_prefix(root.join(dir)).unwrap_or(&path);
            let Some(module) = module_path(inside) else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let ast =
                syn::parse_file(&text).with_context(|| format!("parsing {}", rel.display()))?;
            files.insert(
                module.clone(),
                File {
                    path: rel,
                    module,
                    ast,
                },
            );
        }
        let mut test_modules = Vec::new();
        for file in files.values() {
            for item in &file.ast.items {
                if let syn::Item::Mod(m) = item
                    && is_test_only(&m.attrs)
                {
                    let mut path = file.module.clone();
                    path.push(m.ident.to_string());
                    test_modules.push(path);
                }
            }
        }
        Ok(Crate {
            files,
            test_modules,
        })
    }

    /// Whether `module` is test code.
    pub fn is_test(&self, module: &[String]) -> bool {
        self.test_modules.iter().any(|t| module.starts_with(t))
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` at the top are the crate root. Binaries
/// under `bin/` are crates of their own and are skipped.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let stem = last.strip_suffix(".rs")?.to_owned();
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Some(Vec::new());
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

/// Whether attributes hold `#[cfg(test)]`.
pub fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_to_module_paths() {
        let m = |p: &str| module_path(Path::new(p));
        assert_eq!(m("lib.rs"), Some(vec![]));
        assert_eq!(m("a.rs"), Some(vec!["a".to_owned()]));
        assert_eq!(m("a/mod.rs"), Some(vec!["a".to_owned()]));
        assert_eq!(m("a/b.rs"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(m("bin/tool.rs"), None);
    }
}
