//! Rebuild the kernel programs when the `bpf-linker` binary changes.

use which::which;

fn main() {
    // Building this crate needs `bpf-linker` on PATH; `cargo xtask setup` installs it.
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => {
            println!("cargo:warning=bpf-linker not found on PATH ({err}); run `cargo xtask setup`")
        }
    }
}
