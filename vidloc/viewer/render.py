"""Render a timeline as one self-contained HTML page (pure: values in, a string out).

Everything is inline (the machines that open it may be offline) and every value from the
timeline is HTML-escaped, since labels and descriptions come from a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from urllib.parse import urlsplit

from contracts import Timeline
from vidloc.viewer.layout import Track, layout_tracks, ruler_ticks, span_s

POLL_MS = 2000  # how often a live stream's page asks for its timeline
STREAM_SOURCE = "stream"  # TimelineEvent.source of a stream's own events (gaps)


@dataclass(frozen=True)
class AnalysisTab:
    """One analysis of the video, as the page lists it to switch between them."""

    analysis_id: str
    question: str  # its prompt, else its labels
    status: str
    has_timeline: bool


def _asset(name: str) -> str:
    return resources.files("vidloc.viewer").joinpath(name).read_text(encoding="utf-8")


def _fmt_s(value: float) -> str:
    return f"{value:.1f} s"


def _num(value: float) -> str:
    # Attributes read back by the JS and the browser test: plain decimal, no exponent.
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def _origins(urls: Iterable[str]) -> str:
    """The scheme://host[:port] of each URL, space-first, for a CSP source list."""
    found = sorted({f"{u.scheme}://{u.netloc}" for u in map(urlsplit, urls) if u.netloc})
    return "".join(f" {escape(origin)}" for origin in found)


def _track_html(track: Track, thumbnails: Mapping[str, str]) -> str:
    bars = []
    for bar in track.bars:
        thumb = thumbnails.get(bar.event_id)
        picture = f'data-thumbnail="{escape(thumb)}" ' if thumb else ""
        conf = "" if bar.confidence is None else f"{bar.confidence:.2f}"
        title = f"{bar.label} {_fmt_s(bar.start_s)}-{_fmt_s(bar.end_s)}: {bar.description}"
        kind = "bar gap" if bar.source == STREAM_SOURCE else "bar"
        bars.append(
            f'<button class="{kind}" type="button" data-event-id="{escape(bar.event_id)}" '
            f'data-label="{escape(bar.label)}" data-start="{_num(bar.start_s)}" '
            f'data-end="{_num(bar.end_s)}" data-confidence="{conf}" '
            f'data-description="{escape(bar.description)}" aria-label="{escape(title)}" '
            f"{picture}"
            f'style="left:{_num(bar.left_pct)}%;width:{_num(bar.width_pct)}%;'
            f'background:{track.colour}"></button>'
        )
    return (
        f'<div class="row track" data-label="{escape(track.label)}">'
        f'<div class="name" title="{escape(track.label)}">{escape(track.label)}</div>'
        f'<div class="lane">{"".join(bars)}<div class="playhead"></div></div></div>'
    )


def _meta_html(timeline: Timeline) -> str:
    usage = timeline.usage
    sampling = timeline.sampling
    video = timeline.video
    rows: list[tuple[str, str]] = [("localizer", escape(timeline.localizer))]
    if timeline.model is not None:
        rows.append(("model", escape(timeline.model.name)))
        rows.append(("endpoint", escape(timeline.model.base_url)))
        if timeline.model.params:
            params = json.dumps(timeline.model.params, sort_keys=True, ensure_ascii=False)
            rows.append(("params", f"<pre>{escape(params)}</pre>"))
    if timeline.prompt:
        rows.append(("prompt", f'<pre class="prompt">{escape(timeline.prompt)}</pre>'))
    if timeline.labels:
        rows.append(("labels asked", escape(", ".join(timeline.labels))))
    rows.append(
        (
            "cost",
            f'<span class="cost">{usage.cost:.4f} {escape(usage.currency)}</span> '
            f"({usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
            + (f", {usage.requests} requests" if usage.requests is not None else "")
            + ")",
        )
    )
    size = (
        f", frames sent at {sampling.frame_size[0]}x{sampling.frame_size[1]}"
        if sampling.frame_size
        else ""
    )
    rows.append(
        (
            "sampling",
            f'<span class="sampling">{sampling.sample_fps:g} fps, {sampling.chunk_s:g} s chunks '
            f"({sampling.chunk_overlap_s:g} s overlap), {sampling.frames} frames in "
            f"{sampling.chunks} chunks{size}</span>",
        )
    )
    rows.append(
        (
            "video",
            f"{_fmt_s(video.duration_s)}, {video.width}x{video.height}, "
            f"{video.fps:g} fps, {escape(video.codec)}",
        )
    )
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<div class="meta"><dl>{body}</dl></div>'


def _table_html(timeline: Timeline) -> str:
    if not timeline.events:
        return '<p class="empty">No events were found in this video.</p>'
    rows = []
    for e in sorted(timeline.events, key=lambda e: (e.start_s, e.end_s, e.label)):
        conf = "" if e.confidence is None else f"{e.confidence:.2f}"
        rows.append(
            f'<tr class="ev" data-start="{_num(e.start_s)}"><td>{escape(e.label)}</td>'
            f'<td class="t">{_fmt_s(e.start_s)}</td><td class="t">{_fmt_s(e.end_s)}</td>'
            f"<td>{conf}</td><td>{escape(e.description)}</td></tr>"
        )
    head = "<tr><th>label</th><th>start</th><th>end</th><th>conf.</th><th>description</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _live_attrs(timeline: Timeline) -> str:
    """A live stream's page follows its timeline (viewer.js): polled by the page itself when
    opened directly, posted in by the keyed shell when framed. An ended stream is final."""
    stream = timeline.stream
    if stream is None:
        return ""
    live = "1" if not stream.ended else "0"
    return (
        f' data-video-id="{escape(timeline.video_id)}" data-live="{live}" data-poll-ms="{POLL_MS}"'
    )


def _live_html(timeline: Timeline) -> str:
    stream = timeline.stream
    if stream is None:
        return ""
    state = "stream ended" if stream.ended else "live"
    return (
        f'<div id="live" class="live">{state} · {_fmt_s(stream.covered_s)} covered · '
        f"lag {_fmt_s(stream.lag_s)} · segment {stream.last_seq}</div>"
    )


def _analyses_html(tabs: Sequence[AnalysisTab], current: str, base: str) -> str:
    """Links to the video's other analyses: plain links when the page is opened directly;
    framed by the keyed shell, viewer.js asks the shell to fetch the one clicked."""
    if len(tabs) < 2:
        return ""
    items = []
    for tab in tabs:
        aid = tab.analysis_id
        href = f"{base}view" if aid == "default" else f"{base}analyses/{aid}/view"
        state = " current" if aid == current else ""
        text = tab.question if len(tab.question) <= 80 else tab.question[:79] + "\u2026"
        items.append(
            f'<a class="analysis{state}" href="{escape(href)}" data-analysis-id="{escape(aid)}" '
            f'data-status="{escape(tab.status)}" title="{escape(tab.question)}">'
            f"{escape(text)} <small>{escape(tab.status)}</small></a>"
        )
    return f'<nav class="analyses" aria-label="analyses of this video">{"".join(items)}</nav>'


def _analysis_attr(tabs: Sequence[AnalysisTab], analysis_id: str) -> str:
    if len(tabs) < 2 and analysis_id == "default":
        return ""
    return f' data-analysis-id="{escape(analysis_id)}"'


def render_viewer(
    timeline: Timeline,
    video_url: str | None,
    *,
    note: str | None = None,
    thumbnails: Mapping[str, str] | None = None,
    analyses: Sequence[AnalysisTab] = (),
    analysis_id: str = "default",
    base: str = "",
) -> str:
    """The page for ``timeline``; ``video_url`` (e.g. a presigned GET) feeds the player.

    ``note`` is shown under the title (an export says when its video link expires).
    ``thumbnails`` maps event ids to image URLs (presigned GETs) shown in the bars' tooltips;
    the page's CSP admits images from their origins only. ``analyses`` lists the video's
    analyses to switch to (``analysis_id`` is the one shown; ``base`` is the video's route
    relative to this page, e.g. ``../../`` from ``analyses/<id>/view``).
    """
    thumbnails = thumbnails or {}
    events = timeline.events
    span = span_s(timeline.video.duration_s, events)
    tracks = layout_tracks(timeline.video.duration_s, events)
    ticks = "".join(
        f'<span class="tick" style="left:{_num(100.0 * t / span)}%">{t:g}</span>'
        for t in ruler_ticks(span)
    )
    player = (
        f'<video id="player" controls preload="auto" src="{escape(video_url)}"></video>'
        if video_url
        else '<div class="noplayer">The video could not be linked (no presigned URL).</div>'
    )
    title = f"{timeline.source.bucket}/{timeline.source.key}"
    sub = (
        f"video {escape(timeline.video_id)} · job {escape(timeline.job_id)} · "
        f'<span class="count">{len(events)}</span> events · '
        f"{escape(timeline.created_at.isoformat())}"
    )
    if analysis_id != "default":
        sub += f' · analysis <span class="analysis-id">{escape(analysis_id)}</span>'

    if note:
        sub += f" · {escape(note)}"
    # A live stream's page polls its own timeline route (same origin, nothing else).
    live = timeline.stream is not None and not timeline.stream.ended
    connect = "; connect-src 'self'" if live else ""
    lanes = "".join(_track_html(track, thumbnails) for track in tracks) or (
        '<p class="empty">No events.</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Only inline code and the video's own origin: the page needs nothing else.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; media-src * blob: data:; "
        f'img-src data:{_origins(thumbnails.values())}{connect}">'
        f"<title>vidloc · {escape(title)}</title><style>{_asset('viewer.css')}</style></head>"
        f'<body data-span="{_num(span)}" data-duration="{_num(timeline.video.duration_s)}"'
        f"{_live_attrs(timeline)}{_analysis_attr(analyses, analysis_id)}>"
        f'<h1>{escape(title)}</h1><div class="sub">{sub}</div>{_live_html(timeline)}'
        f"{_analyses_html(analyses, analysis_id, base)}"
        f'<div class="top"><div class="player">{player}</div>{_meta_html(timeline)}</div>'
        f'<div class="timeline"><div class="row ruler"><div class="name">seconds</div>'
        f'<div class="lane">{ticks}</div></div><div class="lanes">{lanes}</div></div>'
        f"{_table_html(timeline)}"
        '<div id="tip" class="tip"></div>'
        f"<script>{_asset('viewer.js')}</script></body></html>\n"
    )
