// The model registry: the registered models (search by name), and a model's
// page: its versions (run, lineage), its aliases with a form to move one
// (set_alias), and the history of every alias move as a timeline.
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { fmtTime, quote, registry } from './api.js';
import { useLoad } from './hooks.js';
import { Link } from './router.jsx';
import { Lineage } from './lineage.jsx';

const modelHref = (name) => `/models/${encodeURIComponent(name)}`;

export function Models() {
  const [q, setQ] = useState('');
  const [query, setQuery] = useState('');
  const { data, error } = useLoad(
    () =>
      registry('search_registered_models', {
        filter: query ? `name ILIKE ${quote(`%${query}%`)}` : undefined,
        order_by: ['name ASC'],
        max_results: 1000,
      }),
    [query]
  );
  const models = data?.registered_models;
  return (
    <section>
      <h1>Models</h1>
      <form class="toolbar" role="search" onSubmit={(e) => (e.preventDefault(), setQuery(q.trim()))}>
        <label>Search models <input type="search" value={q} onInput={(e) => setQ(e.target.value)} placeholder="part of a name" /></label>
        <button type="submit">Search</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {!models ? (
        !error && <p aria-busy="true">Loading models…</p>
      ) : !models.length ? (
        <p class="muted">No registered model{query && ` matches “${query}”`}.</p>
      ) : (
        <table class="plain" data-testid="models">
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Latest version</th><th scope="col">Aliases</th><th scope="col">Updated</th><th scope="col">Description</th></tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.name}>
                <td><Link href={modelHref(m.name)}>{m.name}</Link></td>
                <td class="num">{m.latest_versions?.[0]?.version ?? ''}</td>
                <td>{(m.aliases || []).map((a) => <span class="tag" key={a.alias}>{a.alias}→v{a.version}</span>)}</td>
                <td>{fmtTime(m.last_updated_timestamp)}</td>
                <td>{m.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// Pick an alias (one of the model's or a new name) and a version: set_alias.
function MoveAlias({ name, aliases, versions, done }) {
  const [alias, setAlias] = useState(aliases[0]?.alias || '');
  const [version, setVersion] = useState(String(versions[0]?.version || ''));
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setMsg('');
    try {
      await registry('set_alias', { name, alias: alias.trim(), version: Number(version) });
      setMsg(`${alias.trim()} now names version ${version}.`);
      done();
    } catch (err) {
      setMsg(err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="toolbar" onSubmit={submit} aria-label="Move an alias">
      <label>
        Alias{' '}
        <input list="alias-names" value={alias} onInput={(e) => setAlias(e.target.value)} required size="14" />
        <datalist id="alias-names">{aliases.map((a) => <option key={a.alias} value={a.alias} />)}</datalist>
      </label>
      <label for="alias-version">Version</label>
      <select id="alias-version" value={version} onChange={(e) => setVersion(e.target.value)}>
        {versions.map((v) => <option key={v.version} value={String(v.version)}>{v.version}</option>)}
      </select>
      <button type="submit" disabled={busy || !alias.trim() || !version}>Set alias</button>
      <span role="status" data-testid="alias-msg">{msg}</span>
    </form>
  );
}

const HISTORY_KINDS = {
  model_created: 'model created', version_created: 'version registered', version_deleted: 'version deleted',
  alias_set: 'alias set', alias_deleted: 'alias removed', tag_set: 'tag set', tag_deleted: 'tag removed',
  description_updated: 'description updated', model_renamed: 'renamed', model_deleted: 'model deleted',
};

export function Model({ name }) {
  const [lineageOf, setLineageOf] = useState(null);
  const { data, error, reload } = useLoad(
    () =>
      Promise.all([
        registry('get_registered_model', { name }),
        registry('search_model_versions', { filter: `name = ${quote(name)}`, order_by: ['version_number DESC'], max_results: 1000 }),
        registry('get_model_history', { name, max_results: 1000 }),
      ]),
    [name]
  );
  if (!data) return error ? <p class="error" role="alert">{error}</p> : <p aria-busy="true">Loading model…</p>;
  const [{ registered_model: model }, { model_versions: versions = [] }, { history = [] }] = data;
  const aliases = model.aliases || [];
  const moves = history.filter((h) => h.alias).reverse(); // newest first
  return (
    <section class="model">
      <p class="crumbs"><Link href="/models">Models</Link> / model</p>
      <h1>{model.name}</h1>
      {model.description && <p>{model.description}</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <dl class="info">
        <dt>Created</dt><dd>{fmtTime(model.creation_timestamp)}</dd>
        <dt>Updated</dt><dd>{fmtTime(model.last_updated_timestamp)}</dd>
        {(model.tags || []).map((t) => (<Fragment key={t.key}><dt>{t.key}</dt><dd>{t.value}</dd></Fragment>))}
      </dl>

      <h2>Aliases</h2>
      {aliases.length ? (
        <ul class="aliases" data-testid="aliases">
          {aliases.map((a) => <li key={a.alias}><strong>{a.alias}</strong> → version {a.version}</li>)}
        </ul>
      ) : (
        <p class="muted">none</p>
      )}
      {versions.length > 0 && <MoveAlias name={model.name} aliases={aliases} versions={versions} done={reload} />}

      <h2>Versions</h2>
      <table class="plain" data-testid="versions">
        <thead>
          <tr><th scope="col">Version</th><th scope="col">Aliases</th><th scope="col">Registered</th><th scope="col">By</th><th scope="col">Flavor</th><th scope="col">Run</th><th scope="col">Source</th><th scope="col">Lineage</th></tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td class="num">{v.version}</td>
              <td data-testid="version-aliases">{(v.aliases || []).join(', ')}</td>
              <td>{fmtTime(v.creation_timestamp)}</td>
              <td>{v.user_id}</td>
              <td>{v.flavor}</td>
              <td>{v.run_id ? <Link href={`/runs/${encodeURIComponent(v.run_id)}`}>{v.run_id.slice(0, 12)}</Link> : ''}</td>
              <td class="src" title={v.source}>{v.source}</td>
              <td>
                <button aria-pressed={lineageOf === v.version} onClick={() => setLineageOf(lineageOf === v.version ? null : v.version)} aria-label={`lineage of version ${v.version}`}>
                  {lineageOf === v.version ? 'hide' : 'show'}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {lineageOf !== null && (
        <>
          <h2>Lineage of version {lineageOf}</h2>
          <div class="scroll-x"><Lineage node={`model:${model.name}:${lineageOf}`} /></div>
        </>
      )}

      <h2>Alias history</h2>
      {moves.length ? (
        <ol class="timeline" data-testid="alias-history">
          {moves.map((h, i) => (
            <li key={i} class={h.kind}>
              <time>{fmtTime(h.at)}</time> <strong>{h.alias}</strong>{' '}
              {h.kind === 'alias_set' ? `→ version ${h.version}` : HISTORY_KINDS[h.kind] || h.kind} <span class="muted">by {h.by}</span>
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">No alias was ever set.</p>
      )}
      <details>
        <summary>All changes ({history.length})</summary>
        <ol class="timeline">
          {[...history].reverse().map((h, i) => (
            <li key={i}>
              <time>{fmtTime(h.at)}</time> {HISTORY_KINDS[h.kind] || h.kind}
              {h.version != null && ` v${h.version}`}{h.alias && ` ${h.alias}`}{h.detail && ` (${h.detail})`} <span class="muted">by {h.by}</span>
            </li>
          ))}
        </ol>
      </details>
    </section>
  );
}
