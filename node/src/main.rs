//! The `raftmq` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    raftmq_node::cli::main()
}
