"""`numpybert explain TEXT --html report.html`: one self-contained page for a learner to look at.

The page needs no network and loads nothing: its CSS, SVG and JavaScript are inline. It shows
the data flow of BERT's outputs with the real shapes of this input, the numbers at each step,
two drawings of the pooler (h_[CLS] vs pooled_output per dimension, and the tanh curve with this
input's z on it), the independent checks of `numpybert.teach.explain`, the pooler's code, and the
attention map of every layer and head (a select box; `report.html#layer=2&head=3` opens one).
Everything here formats an `Explanation`; no number is computed that explain.py did not compute,
except the summaries drawn on the page (norms, first values).
"""

import html
import json
import os

import numpy as np

from ..errors import InputValueError, OutputError
from ..loading.files import check_output_path
from .explain import SATURATION, TOKENS_SHOWN, TRANSFORMERS_POOLER, clipped, clipped_tokens, reference_pooler_source

SHOWN = 4  # leading values of each [CLS] row shown in the table of steps


def check_html_path(path: str) -> None:
    """Before any work: a .html name, a writable directory, and no existing file (never overwritten)."""
    if os.path.splitext(path)[1].lower() not in (".html", ".htm"):
        raise InputValueError(f"--html {path}: the file name must end in .html")
    check_output_path(path, "--html")
    if os.path.lexists(path):
        raise OutputError(f"--html {path}: the file exists; numpybert does not overwrite files "
                          "(remove it or choose another name)")


def write_html(e, model, path: str) -> int:
    """Write the page for one Explanation; returns its size in bytes. Refuses to replace a file."""
    page = render(e, model).encode("utf-8")
    try:
        with open(path, "xb") as f:  # "x": fail if it appeared since check_html_path
            f.write(page)
    except FileExistsError:
        raise OutputError(f"--html {path}: the file exists; numpybert does not overwrite files") from None
    return len(page)


def render(e, model) -> str:
    """The whole page as a string."""
    c = model.config
    title = f"numpybert explain: {clipped(e.text, 80)}" + ("" if e.pair is None else f" + {clipped(e.pair, 80)}")
    shown, more = clipped_tokens(e.tokens)
    body = [
        f"<h1>From h<sub>[CLS]</sub> to pooled_output</h1>",
        _p(f"model <code>{_x(model.model_dir)}</code>: L = {c.num_hidden_layers} layers, H = {c.hidden_size}, "
           f"N = {c.num_attention_heads} heads ({model.dtype.name})"),
        _p(f"text <code>{_x(clipped(e.text))}</code>"
           + ("" if e.pair is None else f", pair <code>{_x(clipped(e.pair))}</code>")),
        _p(f"{len(e.tokens)} tokens: " + " ".join(f"<code class='tok'>{_x(t)}</code>" for t in shown)
           + (f" {_x(more)}" if more else "")),
        "<h2>1. The data flow, with this input's shapes</h2>", _diagram(e, model),
        "<h2>2. The numbers at each step</h2>", _steps_table(e),
        "<h2>3. The pooler on this input</h2>", _lesson(e),
        "<h2>4. Checked independently of numpybert's model code</h2>", _checks(e),
        "<h2>5. The code</h2>", _code(),
        "<h2>6. Attention maps</h2>", _attention_section(e),
    ]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_x(title)}</title>\n"
            f"<script>{ERROR_CATCHER}</script>\n<style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{ATTENTION_JS}</script>\n</body></html>\n")


# ----------------------------------------------------------------------------- the diagram

def _diagram(e, model) -> str:
    """Boxes top to bottom: input, embeddings, each layer, last_hidden_state, [CLS] row, dense, tanh;
    beside each, its shape, its name among the outputs, the norm of its [CLS] row, its attention map."""
    T, H, L, N = len(e.tokens), model.config.hidden_size, e.num_layers, e.num_heads
    rows = [("input_ids, token_type_ids, attention_mask", f"[1, {T}]", "", None, "")]
    rows.append(("embeddings: word + position + token_type, LayerNorm", f"[1, {T}, {H}]", "hidden_states[0]",
                 e.hidden_states[0][0], ""))
    for i in range(L):
        rows.append((f"encoder.layer.{i}: attention, FFN (post-LN)", f"[1, {T}, {H}]", f"hidden_states[{i + 1}]",
                     e.hidden_states[i + 1][0], f"attentions[{i}] [1, {N}, {T}, {T}]"))
    rows.append(("last_hidden_state = TF Hub sequence_output", f"[1, {T}, {H}]",
                 f"= hidden_states[{L}] = encoder_outputs[{L - 1}]", None, ""))
    if e.lesson is not None:
        rows += [("h_[CLS] = last_hidden_state[:, 0]", f"[1, {H}]", "", e.h_cls, ""),
                 (f"pooler.dense: z = W·h + b, W [{H}, {H}]", f"[1, {H}]", "", e.lesson.z, ""),
                 ("tanh", f"[1, {H}]", "pooler_output = pooled_output = default", e.lesson.pooled, "")]
    else:
        rows.append(("no pooler in this checkpoint: no pooled_output", "", "", None, ""))
    step, width = 44, 1120
    height = step * len(rows) + 56
    out = [f'<svg id="dataflow" class="diagram" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="data flow of BERT outputs">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
           '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
           '<text class="head" x="420" y="12">shape</text><text class="head" x="530" y="12">output name</text>'
           '<text class="head" x="820" y="12">norm of [CLS] row</text>'
           '<text class="head" x="930" y="12">attention map</text>']
    for k, (label, shape, state, row, attention) in enumerate(rows):
        y = 22 + k * step
        cls = "pool" if k > L + 2 else ("layer" if 2 <= k <= L + 1 else "io")
        out.append(f'<rect class="box {cls}" x="10" y="{y}" width="400" height="30" rx="5"/>'
                   f'<text x="20" y="{y + 20}">{_x(label)}</text>'
                   f'<text class="shape" x="420" y="{y + 20}">{_x(shape)}</text>')
        if k + 1 < len(rows):
            out.append(f'<line x1="210" y1="{y + 30}" x2="210" y2="{y + step}" marker-end="url(#arrow)"/>')
        if state:
            out.append(f'<text class="state" x="530" y="{y + 20}">{_x(state)}</text>')
        if row is not None:
            out.append(f'<text class="norm" x="820" y="{y + 20}">{_norm(row):.4f}</text>')
        if attention:
            out.append(f'<text class="att" x="930" y="{y + 20}">{_x(attention)}</text>')
    y = 22 + len(rows) * step + 8
    out.append(f'<text class="count" x="10" y="{y}">hidden_states: {L + 1} = L + 1 (the embedding output, then one '
               f'per layer) · attentions: {L} = L (one softmax per layer)</text>')
    out.append(f'<text class="count" x="10" y="{y + 20}">TF Hub encoder_outputs: {L} = L (no embedding output) · '
               'default is pooled_output</text>')
    out.append("</svg>")
    return "\n".join(out)


def _steps_table(e) -> str:
    rows = [("hidden_states[0] (embedding output)", e.hidden_states[0][0])]
    rows += [(f"hidden_states[{i}] (layer {i - 1})", h[0]) for i, h in enumerate(e.hidden_states) if i]
    rows.append(("h_[CLS] = last_hidden_state[0, 0]", e.h_cls))
    if e.lesson is not None:
        rows += [("z = W·h_[CLS] + b", e.lesson.z), ("pooled_output = tanh(z)", e.lesson.pooled)]
    cells = "".join(f"<tr><td>{_x(name)}</td><td class='num'>{_norm(v):.4f}</td><td class='num'>{_x(_first(v))}</td></tr>"
                    for name, v in rows)
    return (f"<table id='steps'><tr><th>step ([CLS] row)</th><th>norm</th><th>first {SHOWN} values</th></tr>"
            f"{cells}</table>")


# ----------------------------------------------------------------------------- the pooler

def _lesson(e) -> str:
    p = e.lesson
    if p is None:
        return _p(_x(e.pooler_refusal))
    init = "absent" if p.initializer_range is None else f"{p.initializer_range:g}"
    facts = [("z range", f"{p.z_min:+.4f} .. {p.z_max:+.4f}"), ("max |tanh z − z|", f"{p.max_tanh_gap:.2e}"),
             ("norm h_[CLS] → z → pooled", f"{p.norm_cls:.4f} → {p.norm_z:.4f} → {p.norm_pooled:.4f}"),
             (f"dims with |pooled| > {SATURATION}", f"{p.saturated} of {len(p.z)}"),
             ("mean slope of tanh at z (1 = linear)", f"{p.mean_slope:.4f}"),
             ("cosine(pooled, h_[CLS])", f"{p.cosine_vs_cls:+.4f}"),
             ("pooler weight std / initializer_range", f"{p.weight_std:.4f} / {init}"),
             ("largest singular value / 2·std·√H", f"{p.weight_top_singular:.4f} / {p.random_edge:.4f}"),
             ("max |bias|", f"{p.bias_max_abs:.4g}")]
    if e.nsp_is_next is not None:
        facts.append(("NSP head: P(B follows A)", f"{e.nsp_is_next:.4f}"))
    table = "<table id='lesson'>" + "".join(f"<tr><td>{_x(k)}</td><td class='num'>{_x(v)}</td></tr>"
                                          for k, v in facts) + "</table>"
    return (table + "<ul class='conclusion'>" + "".join(f"<li>{_x(s)}</li>" for s in p.conclusion) + "</ul>"
            + "<div class='plots'>" + _scatter_svg(e.h_cls, p.pooled) + _tanh_svg(p.z, p.pooled) + "</div>")


class _Axes:
    """A 320×320 plot area mapping data (x, y) to SVG pixels."""

    def __init__(self, xlim, ylim, size=320, margin=44):
        self.xlim, self.ylim, self.size, self.margin = xlim, ylim, size, margin

    def px(self, x, y):
        (x0, x1), (y0, y1), s, m = self.xlim, self.ylim, self.size, self.margin
        return m + (x - x0) / (x1 - x0) * s, m + (y1 - y) / (y1 - y0) * s

    def frame(self, title, xlabel, ylabel) -> list:
        s, m = self.size, self.margin
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        return [f'<rect x="{m}" y="{m}" width="{s}" height="{s}" class="frame"/>',
                f'<text x="{m + s / 2}" y="{m - 12}" class="title" text-anchor="middle">{_x(title)}</text>',
                f'<text x="{m + s / 2}" y="{m + s + 34}" text-anchor="middle">{_x(xlabel)}</text>',
                f'<text x="12" y="{m + s / 2}" text-anchor="middle" transform="rotate(-90 12 {m + s / 2})">{_x(ylabel)}</text>',
                f'<text x="{m}" y="{m + s + 16}" class="tick">{x0:.2f}</text>',
                f'<text x="{m + s}" y="{m + s + 16}" class="tick" text-anchor="end">{x1:.2f}</text>',
                f'<text x="{m - 4}" y="{m + s}" class="tick" text-anchor="end">{y0:.2f}</text>',
                f'<text x="{m - 4}" y="{m + 10}" class="tick" text-anchor="end">{y1:.2f}</text>']


def _scatter_svg(h, pooled) -> str:
    lo = float(min(h.min(), pooled.min())) * 1.05
    hi = float(max(h.max(), pooled.max())) * 1.05
    ax = _Axes((lo, hi), (lo, hi))
    out = ['<svg id="scatter" width="400" height="410" viewBox="0 0 400 410" role="img">',
           *ax.frame("pooled_output vs h_[CLS], one dot per dim", "h_[CLS] = last_hidden_state[0, 0]",
                     "pooled_output")]
    (x0, y0), (x1, y1) = ax.px(lo, lo), ax.px(hi, hi)
    out.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" class="diag"><title>y = x</title></line>')
    out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" class="dot"/>' for x, y in (ax.px(a, b) for a, b in zip(h, pooled))]
    out.append("</svg>")
    return "".join(out)


def _tanh_svg(z, pooled) -> str:
    reach = max(3.0, 1.1 * float(np.abs(z).max()))
    ax = _Axes((-reach, reach), (-1.05, 1.05))
    curve = " ".join(f"{x:.1f},{y:.1f}" for x, y in (ax.px(t, np.tanh(t)) for t in np.linspace(-reach, reach, 121)))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (ax.px(t, t) for t in np.linspace(-1.05, 1.05, 2)))
    out = ['<svg id="tanh" width="400" height="410" viewBox="0 0 400 410" role="img">',
           *ax.frame("tanh, with this input's (z, pooled_output)", "z = W·h_[CLS] + b", "tanh(z)")]
    for sign in (1, -1):  # the saturated bands, |tanh| > SATURATION
        (xa, ya), (xb, yb) = ax.px(-reach, sign * 1.05), ax.px(reach, sign * SATURATION)
        out.append(f'<rect x="{xa:.1f}" y="{min(ya, yb):.1f}" width="{xb - xa:.1f}" height="{abs(yb - ya):.1f}" class="band"/>')
    out += [f'<polyline points="{line}" class="diag"/>', f'<polyline points="{curve}" class="curve"/>']
    out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" class="zdot"/>' for x, y in (ax.px(a, b) for a, b in zip(z, pooled))]
    out.append("</svg>")
    return "".join(out)


def _checks(e) -> str:
    items = []
    for check in (e.embedding_check, e.pooler_check):
        if check is None:
            continue
        verdict = "agrees" if check.agrees else "DISAGREES"
        items.append(f"<li><b>{_x(check.step)}</b>: <code>{_x(check.expression)}</code> with {_x(check.inputs)}: "
                     f"max |difference| <span class='num'>{check.max_abs_diff:.1e}</span>, rounding bound "
                     f"{check.tolerance:.1e}: <b class='{verdict.lower()}'>{verdict}</b></li>")
    if e.not_checked:
        items.append(f"<li>not checked: {_x(e.not_checked)}</li>")
    facts = ("Facts of numpybert's API, true by construction (not evidence): TF Hub's <code>default</code> is "
             "<code>pooled_output</code> (the same array), <code>encoder_outputs[-1]</code> is "
             "<code>sequence_output</code>, there are L + 1 hidden states and L attention maps.")
    return f"<ul id='checks'>{''.join(items)}</ul>" + _p(facts)


def _code() -> str:
    parts = []
    try:
        path, first, lines = reference_pooler_source()
        parts.append(_listing(f"numpybert's textbook pooler, {path}", first, lines))
    except ImportError:
        parts.append(_p("numpybert.reference is not installed with this numpybert."))
    t = TRANSFORMERS_POOLER
    parts.append(_listing(f"transformers {t['version']}, {t['path']} (BertPooler)", t["first_line"], t["lines"]))
    return "".join(parts)


def _listing(caption, first, lines) -> str:
    numbered = "\n".join(f"<span class='ln'>{first + i:4d}</span>  {_x(line)}" for i, line in enumerate(lines))
    return f"<figure><figcaption>{_x(caption)}</figcaption><pre class='code'>{numbered}</pre></figure>"


# ----------------------------------------------------------------------------- attention maps

def _attention_section(e) -> str:
    """A select box per layer and head; the data (per-mille integers) is drawn by ATTENTION_JS."""
    n = min(len(e.tokens), TOKENS_SHOWN)  # past ~60 tokens the labels overlap (and T² values per map weigh MBs)
    data = {"tokens": e.tokens[:n],
            "maps": [[np.rint(head[:n, :n] * 1000).astype(int).tolist() for head in layer] for layer in e.attentions]}
    layers = "".join(f"<option value='{i}'>layer {i}</option>" for i in range(e.num_layers))
    heads = "".join(f"<option value='{j}'>head {j}</option>" for j in range(e.num_heads))
    cut = ("" if n == len(e.tokens) else
           f" Shown: the first {n} of {len(e.tokens)} tokens, as queries and keys (past ~{TOKENS_SHOWN} tokens the "
           "labels overlap), so a row sums to 1 only over all keys; every map whole: "
           "<code>model(..., output_attentions=True).attentions</code>.")
    return (_p("attentions[layer][0, head]: rows are queries (attending), columns are keys (attended to); "
               "each row sums to 1. Colour: square root of the probability (white 0, dark blue 1); hover a cell for "
               "its value, in thousandths." + cut)
            + f"<label>layer <select id='layer'>{layers}</select></label> "
            + f"<label>head <select id='head'>{heads}</select></label>"
            + f'<div id="attention-map"></div>'
            + f"<script id='attention-data' type='application/json'>{_json_for_script(data)}</script>")


def _json_for_script(data) -> str:
    """JSON that cannot close its <script> element early (tokens are user text)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


# ----------------------------------------------------------------------------- helpers

def _x(s) -> str:
    return html.escape(str(s), quote=True)


def _p(inner: str) -> str:
    return f"<p>{inner}</p>"


def _norm(v) -> float:
    return float(np.linalg.norm(np.asarray(v, np.float64)))


def _first(v) -> str:
    return " ".join(f"{x:+.4f}" for x in v[:SHOWN]) + (" …" if len(v) > SHOWN else "")


ERROR_CATCHER = """
window.numpybertErrors = [];
window.addEventListener('error', function (ev) {
  window.numpybertErrors.push(String(ev.message));
  document.documentElement.setAttribute('data-errors', window.numpybertErrors.join(' | '));
});
"""

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1140px; color: #222; }
code, pre { font: 12.5px ui-monospace, monospace; }
code.tok { background: #eef; padding: 0 3px; border-radius: 3px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
td.num, span.num { font-family: ui-monospace, monospace; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
.box { stroke: #555; fill: #f4f4f4; } .box.layer { fill: #e6f0ff; } .box.pool { fill: #fff0dd; }
svg line { stroke: #555; } text.shape { font-family: ui-monospace, monospace; }
text.state { fill: #176b2c; } text.att { fill: #a04a00; } text.count { font-weight: bold; } text.head { fill: #777; font-size: 11px; } text.norm { font-family: ui-monospace, monospace; }
.frame { fill: none; stroke: #999; } .diag { stroke: #999; stroke-dasharray: 4 3; fill: none; }
.dot { fill: #1f77b4; fill-opacity: .7; } .zdot { fill: #ff7f0e; } .curve { fill: none; stroke: #222; stroke-width: 1.5; }
.band { fill: #d62728; fill-opacity: .12; } text.tick { font-size: 10px; fill: #666; } text.title { font-weight: bold; }
.plots { display: flex; gap: 16px; flex-wrap: wrap; }
pre.code { background: #f7f7f7; padding: 8px; overflow-x: auto; } .ln { color: #999; }
b.agrees { color: #176b2c; } b.disagrees { color: #c00; }
#attention-map svg text { font-size: 11px; }
"""

ATTENTION_JS = r"""
(function () {
  var data = JSON.parse(document.getElementById('attention-data').textContent);
  var layerSel = document.getElementById('layer'), headSel = document.getElementById('head');
  var NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function colour(v) {  // white (0) to dark blue (1000), on a square-root scale so small weights show
    var t = Math.sqrt(v / 1000), r = Math.round(255 - 225 * t), g = Math.round(255 - 175 * t), b = Math.round(255 - 95 * t);
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }
  function draw() {
    var layer = +layerSel.value, head = +headSel.value, tokens = data.tokens, m = data.maps[layer][head];
    var T = tokens.length, cell = Math.max(12, Math.min(34, Math.floor(560 / T))), left = 110, top = 100;
    var svg = el('svg', {id: 'attention-svg', width: left + T * cell + 20, height: top + T * cell + 20,
                         'data-layer': layer, 'data-head': head});
    svg.appendChild(el('text', {x: 0, y: 14, 'font-weight': 'bold'},
                       'layer ' + layer + ', head ' + head + ': attentions[' + layer + '][0, ' + head + ']'));
    for (var q = 0; q < T; q++) {
      svg.appendChild(el('text', {x: left - 6, y: top + q * cell + cell * 0.65, 'text-anchor': 'end',
                                  'class': 'query-label'}, tokens[q]));
      var x = left + q * cell + cell * 0.6, y = top - 6;
      svg.appendChild(el('text', {x: x, y: y, transform: 'rotate(-60 ' + x + ' ' + y + ')', 'class': 'key-label'},
                         tokens[q]));
      for (var k = 0; k < T; k++) {
        var rect = el('rect', {x: left + k * cell, y: top + q * cell, width: cell, height: cell,
                               fill: colour(m[q][k]), 'class': 'cell'});
        rect.appendChild(el('title', {}, tokens[q] + ' → ' + tokens[k] + ': ' + (m[q][k] / 1000).toFixed(3)));
        svg.appendChild(rect);
      }
    }
    var holder = document.getElementById('attention-map');
    holder.replaceChildren(svg);
  }
  var wanted = /layer=(\d+).*head=(\d+)/.exec(location.hash);
  if (wanted && +wanted[1] < data.maps.length && +wanted[2] < data.maps[0].length) {
    layerSel.value = wanted[1]; headSel.value = wanted[2];
  }
  layerSel.addEventListener('change', draw);
  headSel.addEventListener('change', draw);
  draw();
  document.documentElement.setAttribute('data-rendered', 'yes');
})();
"""
