"""Writer routing: the writer lease and its keeper, the failsafe for DCS outages, health verdicts, peer asks."""
