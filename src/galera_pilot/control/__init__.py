"""Operating a cluster from anywhere: addressing it (a folder, a configuration file or a DCS URL) and the
operations the CLI verbs share."""
