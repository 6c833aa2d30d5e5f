//! Integration tests: the real agent on the real kernel, as root. One module per area.

mod cli;
mod exec;
mod files;
mod filters;
mod journal;
mod net;
mod process;
mod storm;
mod watch;
