//! The node binary the integration tests start: the same entry point as `raftmq`.

fn main() -> std::process::ExitCode {
    raftmq_node::cli::main()
}
