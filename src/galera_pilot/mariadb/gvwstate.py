"""Reading gvwstate.dat: the Primary Component view Galera saves for pc.recovery.

Galera writes it on every Primary view and removes it on a graceful shutdown, so after a crash of every
node each datadir still names the last component and the node's own place in it. galera-pilot only
reads it, to know whether all members of that component are back (then Galera may re-form it alone).
"""

from __future__ import annotations

from pathlib import Path

from galera_pilot.cluster import SavedView


def parse_gvwstate(text: str) -> SavedView | None:
    """The saved view, or None when the text is not a complete gvwstate.dat (a torn write, garbage)."""
    my_uuid = view_id = ""
    members: list[str] = []
    inside = ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if line == "#vwbeg":
            inside = True
        elif line == "#vwend":
            ended = inside
            inside = False
        elif line.startswith("my_uuid:"):
            my_uuid = line.partition(":")[2].strip()
        elif inside and line.startswith("view_id:"):
            view_id = " ".join(line.partition(":")[2].split())
        elif inside and line.startswith("member:"):
            fields = line.partition(":")[2].split()
            if fields:
                members.append(fields[0])
    if not (my_uuid and view_id and members and ended) or my_uuid not in members:
        return None
    return SavedView(my_uuid, view_id, tuple(sorted(members)))


def render_gvwstate(view: SavedView) -> str:
    """A gvwstate.dat naming `view`, as Galera writes it (the number after each member is its segment)."""
    members = "".join(f"member: {member} 0\n" for member in view.members)
    return f"my_uuid: {view.my_uuid}\n#vwbeg\nview_id: {view.view_id}\nbootstrap: 0\n{members}#vwend\n"


def read_saved_view(data_dir: Path) -> SavedView | None:
    try:
        text = (data_dir / "gvwstate.dat").read_text(errors="replace")
    except OSError:
        return None
    return parse_gvwstate(text)
