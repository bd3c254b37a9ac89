"""The keyed viewer's shell page (pure: a video id in, a string out).

With API keys every data route needs ``Authorization: Bearer``, which a browser does not send
when it follows a link. The shell carries no data: its script asks for the key, keeps it in the
tab's sessionStorage (gone with the tab; never in a URL, history, a cookie or a server log),
fetches ``/videos/{id}/view`` with the header, and shows the page in an iframe sandboxed
without same-origin, so the viewer's own script cannot read the stored key.
"""

from __future__ import annotations

from html import escape

from vidloc.viewer.render import _asset

# srcdoc frames inherit this policy, so it also allows what the viewer page needs.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; media-src * blob: data:; img-src data:; frame-src 'self'; "
    "form-action 'none'; base-uri 'none'"
)
_STYLE = (
    "body{margin:0;font:14px system-ui,sans-serif;background:#15171c;color:#e8e8e8}"
    "form{display:none;padding:2em}input{width:32em;max-width:90%;padding:.4em}"
    "#note{padding:0 2em;color:#f28e2b}"
    "iframe{display:none;border:0;width:100%;height:100vh}"
)


def render_shell(video_id: str) -> str:
    vid = escape(video_id)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>vidloc · {vid}</title><style>{_STYLE}</style></head>"
        f'<body data-video-id="{vid}" data-state="asking">'
        '<form id="keyform" autocomplete="off"><p>API key for video '
        f"<code>{vid}</code> (kept in this tab only):</p>"
        '<input id="key" type="password" autocomplete="off" spellcheck="false">'
        ' <button type="submit">open</button></form>'
        '<p id="note"></p>'
        '<iframe id="view" title="timeline viewer" sandbox="allow-scripts"></iframe>'
        f"<script>{_asset('shell.js')}</script></body></html>\n"
    )
