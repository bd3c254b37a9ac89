"""The viewer's search page (pure: the store's origin in, a string out), served at
``/search/view``.

Like the keyed shell (shell.py) it carries no data: its script asks ``GET /search`` with the API
key from the tab's sessionStorage (the key the shell stores; asked for on a 401, never put in a
URL, history, cookie or log), shows each hit with its thumbnail (fetched with the key, shown as
a blob: URL), and on a click asks the event's clip route for its presigned URL
(``Accept: application/json``) and plays it in a ``<video>``. Every text from the API is set
as text, never parsed as HTML: labels and descriptions come from a model or a stranger.
The API scopes every call to the key's tenant, so the page shows only what the key may read.
"""

from __future__ import annotations

from html import escape

from vidloc.viewer.render import _asset

_STYLE = (
    "body{margin:0;font:14px system-ui,sans-serif;background:#15171c;color:#e8e8e8}"
    "header,main{padding:1em 2em}form{margin:.5em 0}input{padding:.4em;width:28em;max-width:80%}"
    "#keyform{display:none}#note{color:#f28e2b;min-height:1.2em}"
    "#layout{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}"
    "#results{list-style:none;margin:0;padding:0;flex:1 1 28em;max-width:44em}"
    ".hit{display:flex;gap:.8em;padding:.5em;border-bottom:1px solid #2a2d35;cursor:pointer}"
    ".hit:hover,.hit:focus,.hit.playing{background:#232731;outline:none}"
    ".hit img,.hit .nothumb{width:160px;height:90px;object-fit:cover;background:#000;flex:none}"
    ".hit .label{font-weight:600}.hit .meta{color:#9aa0aa;font-size:12px}"
    ".hit .desc{margin-top:.2em}#player{flex:1 1 24em;max-width:48em}"
    "video{width:100%;background:#000;display:none}#more{display:none;margin:1em 0}"
)


def render_search_page(store_origin: str) -> str:
    """The page; ``store_origin`` (``scheme://host:port`` of the S3 endpoint the API presigns
    for) is the only place its CSP lets media come from."""
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        f"connect-src 'self'; img-src blob:; media-src {escape(store_origin)}; "
        "form-action 'none'; base-uri 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>vidloc · search</title><style>{_STYLE}</style></head>"
        '<body data-state="ready"><header>'
        '<form id="searchform" role="search" autocomplete="off">'
        '<input id="q" type="search" placeholder="find a moment: red car, goal, slide change"'
        ' maxlength="1000" spellcheck="false" aria-label="search"> '
        '<button type="submit">search</button></form>'
        '<form id="keyform" autocomplete="off"><span>API key (kept in this tab only): </span>'
        '<input id="key" type="password" autocomplete="off" spellcheck="false">'
        ' <button type="submit">use</button></form>'
        '<p id="note" role="status"></p></header>'
        '<main id="layout"><div><ul id="results"></ul>'
        '<button id="more" type="button">more</button></div>'
        '<div id="player"><video id="clip" controls playsinline preload="auto"></video>'
        '<p id="caption"></p></div></main>'
        f"<script>{_asset('search.js')}</script></body></html>\n"
    )
