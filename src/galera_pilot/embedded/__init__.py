"""The one-machine layout that `up` makes and `down` stops: a cluster folder, its agents and its proxy."""
