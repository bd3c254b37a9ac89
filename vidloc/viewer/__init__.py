"""The timeline viewer: one self-contained HTML page per timeline (inline CSS and JS, no
external assets), served by the API at ``/videos/{id}/view`` and exported by
``vidloc timeline ID --html FILE``."""

from vidloc.viewer.layout import Bar, Track, layout_tracks
from vidloc.viewer.render import render_viewer
from vidloc.viewer.search_page import render_search_page
from vidloc.viewer.shell import render_shell

__all__ = ["Bar", "Track", "layout_tracks", "render_search_page", "render_shell", "render_viewer"]
