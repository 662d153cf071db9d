//! The `raftmq` binary; everything lives in the library.

fn main() -> anyhow::Result<()> {
    raftmq_node::cli::main()
}
