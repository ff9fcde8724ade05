"""The IR: a networkx graph of ops, its builder, its check passes and its renderers."""
