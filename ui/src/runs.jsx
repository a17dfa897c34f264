// An experiment's runs: a table drawn a window at a time (only the rows in
// view are in the DOM), its pages asked of the server as the user scrolls
// (search_runs with page_token), sorted and filtered by the server (order_by,
// Cairn's filter syntax with OR and parentheses). Keys: arrows, Page Up/Down,
// Home/End move the focus; Enter opens the run; Space selects it
// (Shift+Space or Shift+click: the range from the last row toggled).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { field, fmtDuration, fmtNum, fmtTime, kv, tracking } from './api.js';
import { go, Link } from './router.jsx';

const FIRST = 100; // rows of the first request: a few screenfuls, soon there
const PAGE = 300; // rows of each later one, asked for ahead of the scroll
const ROW_H = 28; // px; every row is one line, so the window is arithmetic
const OVERSCAN = 10;
const AHEAD = 100; // ask for the next page when the view is this near the end

function Chooser({ label, keys, chosen, setChosen }) {
  return (
    <details class="chooser">
      <summary>{label} ({chosen.length})</summary>
      <fieldset>
        <legend>{label}</legend>
        {keys.map((k) => (
          <label key={k}>
            <input
              type="checkbox"
              checked={chosen.includes(k)}
              onChange={(e) => setChosen(e.target.checked ? [...chosen, k] : chosen.filter((c) => c !== k))}
            />
            {k}
          </label>
        ))}
      </fieldset>
    </details>
  );
}

// The list's state: rows so far, the next page's token, who is loading.
function useRunPages(experimentId, filter, orderBy, viewType) {
  const [s, set] = useState({ rows: [], token: null, loading: true, error: '', ms: 0 });
  const gen = useRef(0);
  const busy = useRef(false);
  const fetchPage = async (token, rows, g) => {
    busy.current = true;
    const t0 = performance.now();
    try {
      const r = await tracking('search_runs', {
        experiment_ids: [experimentId],
        filter,
        order_by: orderBy ? [orderBy] : [],
        max_results: token ? PAGE : FIRST,
        run_view_type: viewType,
        ...(token ? { page_token: token } : {}),
      });
      if (g !== gen.current) return;
      set({ rows: rows.concat(r.runs || []), token: r.next_page_token || null, loading: false, error: '', ms: performance.now() - t0 });
    } catch (e) {
      if (g === gen.current) set({ rows, token: null, loading: false, error: e.message, ms: 0 });
    } finally {
      if (g === gen.current) busy.current = false;
    }
  };
  useEffect(() => {
    const g = ++gen.current;
    set((p) => ({ ...p, loading: true, error: '' }));
    fetchPage(null, [], g);
  }, [experimentId, filter, orderBy, viewType]);
  const more = () => {
    if (busy.current || !s.token) return;
    set((p) => ({ ...p, loading: true }));
    fetchPage(s.token, s.rows, gen.current);
  };
  const reload = () => {
    const g = ++gen.current;
    fetchPage(null, [], g);
  };
  return { ...s, more, reload };
}

function keysOf(rows, what) {
  const keys = new Set();
  for (const r of rows.slice(0, 50)) for (const m of r.data?.[what] || []) keys.add(m.key);
  return [...keys].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

function SortButton({ name, label, orderBy, setOrderBy }) {
  const dir = orderBy.startsWith(name + ' ') ? orderBy.slice(name.length + 1) : '';
  const next = dir === 'DESC' ? `${name} ASC` : `${name} DESC`;
  return (
    <button class="sort" onClick={() => setOrderBy(next)} aria-label={`sort by ${label}`} aria-sort={dir ? (dir === 'DESC' ? 'descending' : 'ascending') : undefined}>
      {label} {dir === 'DESC' ? '▼' : dir === 'ASC' ? '▲' : ''}
    </button>
  );
}

export function Runs({ experimentId }) {
  const q = new URLSearchParams(location.search);
  const [filterText, setFilterText] = useState(q.get('filter') || '');
  const [filter, setFilter] = useState(q.get('filter') || '');
  const [orderBy, setOrderBy] = useState(q.get('order') || '');
  const [viewType, setViewType] = useState('ACTIVE_ONLY');
  const [exp, setExp] = useState(null);
  const pages = useRunPages(experimentId, filter, orderBy, viewType);
  const [metricCols, setMetricCols] = useState(null);
  const [paramCols, setParamCols] = useState(null);
  const [tagCols, setTagCols] = useState(null);
  const [selected, setSelected] = useState(new Set());
  const [focus, setFocus] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const body = useRef(null);

  useEffect(() => {
    tracking('get_experiment', { experiment_id: experimentId }).then((r) => setExp(r.experiment), () => {});
  }, [experimentId]);
  useEffect(() => {
    const p = new URLSearchParams();
    if (filter) p.set('filter', filter);
    if (orderBy) p.set('order', orderBy);
    const url = location.pathname + (p.toString() ? '?' + p : '');
    if (url !== location.pathname + location.search) history.replaceState(null, '', url);
  }, [filter, orderBy]);

  const metricKeys = useMemo(() => keysOf(pages.rows, 'metrics'), [pages.rows.length > 0 && pages.rows[0]]);
  const paramKeys = useMemo(() => keysOf(pages.rows, 'params'), [pages.rows.length > 0 && pages.rows[0]]);
  const tagKeys = useMemo(() => keysOf(pages.rows, 'tags'), [pages.rows.length > 0 && pages.rows[0]]);
  const mcols = metricCols || metricKeys.slice(0, 4);
  const pcols = paramCols || paramKeys.slice(0, 2);
  const tcols = tagCols || []; // none by default: most are the system's (mlflow.*)

  useEffect(() => {
    const el = body.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    setFocus(0);
    anchor.current = null;
  }, [filter, orderBy, viewType]);

  const n = pages.rows.length;
  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(n, Math.ceil((scrollTop + height) / ROW_H) + OVERSCAN);
  useEffect(() => {
    if (last + AHEAD >= n && pages.token) pages.more();
  }, [last, n, pages.token]);

  const rowsById = (ids) => ids.map((id) => pages.rows.find((r) => r.info.run_id === id)).filter(Boolean);
  const toggle = (id) => {
    const s = new Set(selected);
    s.has(id) ? s.delete(id) : s.add(id);
    setSelected(s);
  };
  // Row i toggled; with Shift, every row from the last one toggled (the
  // anchor) to i takes i's new state.
  const anchor = useRef(null);
  const select = (i, shift) => {
    const id = pages.rows[i].info.run_id;
    const on = !selected.has(id);
    const a = anchor.current;
    if (shift && a !== null && a < n) {
      const s = new Set(selected);
      for (let k = Math.min(a, i); k <= Math.max(a, i); k++) {
        const rid = pages.rows[k].info.run_id;
        on ? s.add(rid) : s.delete(rid);
      }
      setSelected(s);
    } else toggle(id);
    anchor.current = i;
  };
  const moveFocus = (i) => {
    const f = Math.max(0, Math.min(n - 1, i));
    setFocus(f);
    const el = body.current;
    if (f * ROW_H < el.scrollTop) el.scrollTop = f * ROW_H;
    else if ((f + 1) * ROW_H > el.scrollTop + el.clientHeight) el.scrollTop = (f + 1) * ROW_H - el.clientHeight;
  };
  const page = Math.max(1, Math.floor(height / ROW_H) - 1);
  const onKey = (e) => {
    const keys = { ArrowDown: focus + 1, ArrowUp: focus - 1, PageDown: focus + page, PageUp: focus - page, Home: 0, End: n - 1 };
    if (e.key in keys) {
      e.preventDefault();
      moveFocus(keys[e.key]);
    } else if (e.key === 'Enter' && pages.rows[focus]) {
      e.preventDefault();
      go(`/runs/${encodeURIComponent(pages.rows[focus].info.run_id)}`);
    } else if (e.key === ' ' && pages.rows[focus]) {
      e.preventDefault();
      select(focus, e.shiftKey);
    }
  };
  const apply = (e) => {
    e.preventDefault();
    setFilter(filterText.trim());
  };
  const lifecycle = async (verb) => {
    for (const id of selected) await tracking(verb, { run_id: id }).catch(() => {});
    setSelected(new Set());
    pages.reload();
  };

  const cols = `2rem minmax(10rem, 2fr) 6rem 11rem 6rem ${'minmax(6rem, 1fr) '.repeat(mcols.length + pcols.length + tcols.length)}`;
  return (
    <section class="runs">
      <h1>{exp ? exp.name : `Experiment ${experimentId}`}</h1>
      <form class="toolbar" onSubmit={apply} role="search">
        <label for="filter">Filter</label>
        <input id="filter" class="filter" value={filterText} onInput={(e) => setFilterText(e.target.value)} placeholder="metrics.acc > 0.9 AND (params.lr = '0.1' OR params.lr = '0.01')" spellcheck={false} />
        <button type="submit">Apply</button>
        <Chooser label="Metrics" keys={metricKeys} chosen={mcols} setChosen={setMetricCols} />
        <Chooser label="Params" keys={paramKeys} chosen={pcols} setChosen={setParamCols} />
        <Chooser label="Tags" keys={tagKeys} chosen={tcols} setChosen={setTagCols} />
        <label>
          Show{' '}
          <select value={viewType} onChange={(e) => setViewType(e.target.value)}>
            <option value="ACTIVE_ONLY">active</option>
            <option value="DELETED_ONLY">deleted</option>
            <option value="ALL">all</option>
          </select>
        </label>
      </form>
      {pages.error && <p class="error" role="alert" data-testid="filter-error">{pages.error}</p>}
      <div class="toolbar">
        <span aria-live="polite" data-testid="count">
          {n} runs{pages.token ? ' loaded, more as you scroll' : ''}
          {pages.loading ? ' (loading…)' : ''}
        </span>
        <span>{selected.size} selected</span>
        <button disabled={selected.size < 2} onClick={() => go(`/compare?runs=${[...selected].map(encodeURIComponent).join(',')}`)}>Compare</button>
        {viewType !== 'DELETED_ONLY' && <button disabled={!selected.size} onClick={() => lifecycle('delete_run')}>Delete</button>}
        {viewType !== 'ACTIVE_ONLY' && <button disabled={!selected.size} onClick={() => lifecycle('restore_run')}>Restore</button>}
      </div>
      <div class="grid" role="grid" aria-rowcount={n + 1} aria-label="Runs" style={{ '--cols': cols }}>
        <div class="row head" role="row" aria-rowindex={1}>
          <span role="columnheader"><span class="sr">selected</span></span>
          <span role="columnheader"><SortButton name="attributes.run_name" label="Run" orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          <span role="columnheader"><SortButton name="attributes.status" label="Status" orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          <span role="columnheader"><SortButton name="attributes.start_time" label="Started" orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          <span role="columnheader">Duration</span>
          {mcols.map((k) => (
            <span role="columnheader" key={'m' + k}><SortButton name={field('metrics', k)} label={k} orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          ))}
          {pcols.map((k) => (
            <span role="columnheader" key={'p' + k}><SortButton name={field('params', k)} label={k} orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          ))}
          {tcols.map((k) => (
            <span role="columnheader" key={'t' + k}><SortButton name={field('tags', k)} label={k} orderBy={orderBy} setOrderBy={setOrderBy} /></span>
          ))}
        </div>
        <div class="body" ref={body} tabIndex={0} onKeyDown={onKey} onScroll={(e) => setScrollTop(e.target.scrollTop)} aria-activedescendant={n ? `run-row-${focus}` : undefined} data-testid="runs-body">
          <div style={{ height: n * ROW_H + 'px', position: 'relative' }}>
            {pages.rows.slice(first, last).map((run, j) => {
              const i = first + j;
              const id = run.info.run_id;
              const m = kv(run.data?.metrics);
              const p = kv(run.data?.params);
              const t = kv(run.data?.tags);
              return (
                <div class={'row' + (i === focus ? ' focus' : '')} role="row" id={`run-row-${i}`} aria-rowindex={i + 2} aria-selected={selected.has(id)} key={id} style={{ top: i * ROW_H + 'px' }} onClick={() => setFocus(i)}>
                  <span role="gridcell"><input type="checkbox" tabIndex={-1} checked={selected.has(id)} onClick={(e) => select(i, e.shiftKey)} aria-label={`select ${run.info.run_name || id}`} /></span>
                  <span role="gridcell"><Link href={`/runs/${encodeURIComponent(id)}`} tabIndex={-1}>{run.info.run_name || id}</Link></span>
                  <span role="gridcell">{run.info.status}</span>
                  <span role="gridcell">{fmtTime(run.info.start_time)}</span>
                  <span role="gridcell">{fmtDuration(run.info)}</span>
                  {mcols.map((k) => <span role="gridcell" class="num" key={'m' + k} title={m[k]}>{fmtNum(m[k])}</span>)}
                  {pcols.map((k) => <span role="gridcell" key={'p' + k}>{p[k] ?? ''}</span>)}
                  {tcols.map((k) => <span role="gridcell" key={'t' + k} title={t[k]}>{t[k] ?? ''}</span>)}
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </section>
  );
}
