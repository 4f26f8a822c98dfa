"""The `galera-pilot` command line: one module per group of verbs, each thin (parse, call, print)."""
