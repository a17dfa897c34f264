// The registry's lineage of one node (a run, a model version, an endpoint
// ...), drawn as a layered graph in SVG: each node's column is its distance
// from the node asked about along the edges (inputs to the left, products
// to the right), nodes coloured by type, edges labelled by kind. No graph
// library: the graphs are small (a walk of depth 3).
import { registry } from './api.js';
import { useLoad } from './hooks.js';
import { go } from './router.jsx';

const W = 210, H = 30, GX = 70, GY = 14, PAD = 8;

// node id -> a page of the app, or null
function href(id) {
  const m = id.match(/^(\w+):(.*)$/);
  if (!m) return null;
  const [, type, rest] = m;
  if (type === 'run') return `/runs/${encodeURIComponent(rest)}`;
  if (type === 'model') return `/models/${encodeURIComponent(rest.replace(/[:@][^:@]*$/, ''))}`;
  if (type === 'endpoint') return `/endpoints/${encodeURIComponent(rest)}`;
  if (type === 'deployment') return `/endpoints/${encodeURIComponent(rest.split('/')[0])}`;
  return null;
}

// {id: column}: the root at 0, an edge's head one column right of its tail
export function layers(root, edges) {
  const col = { [root]: 0 };
  for (let changed = true, n = 0; changed && n < 100; n++) {
    changed = false;
    for (const e of edges) {
      if (e.from in col && !(e.to in col)) (col[e.to] = col[e.from] + 1), (changed = true);
      else if (e.to in col && !(e.from in col)) (col[e.from] = col[e.to] - 1), (changed = true);
    }
  }
  return col;
}

export function Lineage({ node, depth = 3 }) {
  const { data, error } = useLoad(() => registry('lineage', { node, direction: 'both', depth }), [node, depth]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!data) return <p aria-busy="true">Loading lineage…</p>;
  const nodes = data.nodes || [], edges = data.edges || [];
  if (!edges.length) return <p class="muted" data-testid="lineage">No lineage recorded for {node}.</p>;
  const col = layers(nodes.find((n) => n.id === node)?.id || nodes[0].id, edges);
  const min = Math.min(...Object.values(col));
  const byCol = [];
  const pos = {};
  for (const n of nodes) {
    const c = (col[n.id] ?? 0) - min;
    (byCol[c] ||= []).push(n);
    pos[n.id] = { x: PAD + c * (W + GX), y: PAD + (byCol[c].length - 1) * (H + GY), type: n.type };
  }
  const width = PAD * 2 + byCol.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(...byCol.map((c) => c?.length || 0)) * (H + GY) - GY;
  return (
    <svg class="lineage" data-testid="lineage" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="group" aria-label={`lineage of ${node}`}>
      <defs>
        <marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" orient="auto">
          <path d="M0 0L8 4L0 8z" class="arrowhead" />
        </marker>
      </defs>
      {edges.map((e) => {
        const a = pos[e.from], b = pos[e.to];
        if (!a || !b) return null;
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
        return (
          <g key={`${e.from}>${e.to}`} class="edge">
            <path d={`M${x1} ${y1}C${x1 + GX / 2} ${y1} ${x2 - GX / 2} ${y2} ${x2} ${y2}`} marker-end="url(#arrow)" />
            <text x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 4} text-anchor="middle">{e.kind}</text>
          </g>
        );
      })}
      {nodes.map((n) => {
        const p = pos[n.id], to = href(n.id);
        const box = (
          <g class={`node ${n.type}${n.id === node ? ' root' : ''}`} data-id={n.id}>
            <title>{`${n.type}: ${n.id}`}</title>
            <rect x={p.x} y={p.y} width={W} height={H} rx="4" />
            <text x={p.x + 8} y={p.y + H / 2 + 4}>{n.id.length > 27 ? n.id.slice(0, 26) + '…' : n.id}</text>
          </g>
        );
        return to && n.id !== node ? (
          <a key={n.id} href={to} onClick={(e) => (e.preventDefault(), go(to))}>{box}</a>
        ) : (
          <g key={n.id}>{box}</g>
        );
      })}
    </svg>
  );
}
