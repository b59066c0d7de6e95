//! End-to-end tests: the real `cobox` binary as separate processes, each device with its own
//! `COBOX_HOME`, on real folders in temp dirs.

mod util;

mod crash;
mod foundation;
mod members;
mod network;
mod operations;
mod recovery;
mod seeding;
mod sync;
mod week;
