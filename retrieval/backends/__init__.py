"""One module per vector engine; :func:`retrieval.factory.build_index` picks one."""
