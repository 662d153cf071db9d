//! The node binary the integration tests start: the same entry point as `raftmq`.

fn main() -> anyhow::Result<()> {
    raftmq_node::cli::main()
}
