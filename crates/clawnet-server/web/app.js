// clawnet dashboard: vanilla JS, no build step. Speaks REST v1 (Bearer) and
// C2CP v2 over /ws (token in the query; browsers cannot set headers).
// User content is only ever written with textContent / text nodes.

const TOKEN_KEY = 'clawnet.token';
const $ = (id) => document.getElementById(id);

// ---------- tiny DOM helper (no innerHTML anywhere) ----------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'testid') el.dataset.testid = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const now = new Date();
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return t;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
}
function fmtAgo(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
const json = (v) => JSON.stringify(v, null, 2);

// ---------- state ----------
const S = {
  token: null,
  me: null, // {agent_id, handle, role}
  role: null,
  rooms: new Map(), // key -> {info, msgs: Map seq->env, unread, readTo, loaded}
  dms: new Map(), // key -> {with: {agent_id, handle}}
  cursors: {}, // room -> highest seq received (resume on reconnect)
  presence: new Map(), // agent_id -> PresenceEntry
  activity: new Map(),
  typing: new Map(), // room -> Map(from_handle -> expiry)
  tasks: new Map(), // task_id -> Task
  route: { name: 'chat', arg: 'global' },
  timers: [],
};

// ---------- REST ----------
class ApiError extends Error {
  constructor(status, err) {
    super((err && err.message) || `HTTP ${status}`);
    this.status = status;
    this.code = err && err.code;
    this.details = err && err.details;
  }
}
async function api(method, path, body) {
  const opts = { method, headers: { Authorization: `Bearer ${S.token}` } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/v1${path}`, opts);
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  // 202 is how REST answers `held` (the defender keeps it for review): an
  // error body with a success status. A Task's own `error` is a string.
  const held = res.status === 202 && data && data.error && typeof data.error === 'object';
  if (!res.ok || held) throw new ApiError(res.status, data && data.error);
  return data;
}
const enc = encodeURIComponent;

// ---------- toast / banner ----------
let toastTimer = 0;
function toast(msg, kind) {
  const t = $('toast');
  t.textContent = msg;
  t.className = `toast ${kind || ''}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}
function errText(e) {
  if (e && e.code === 'held') {
    const q = e.details && e.details.quarantine_id;
    return `Held for review by the defender${q ? ` (${q})` : ''}: it is delivered if a warden approves it.`;
  }
  if (e && e.code === 'blocked') return `Blocked by the defender: ${e.message}`;
  return e && e.code ? `${e.code}: ${e.message}` : String((e && e.message) || e);
}

// ---------- WebSocket session ----------
const WS = {
  sock: null, nextId: 1, pending: new Map(), ready: false, attempt: 0,
  pingTimer: 0, retryTimer: 0, closedByUs: false, everConnected: false, routed: false,
};

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws?token=${enc(S.token)}`;
}

function setConn(state) {
  const c = $('conn-state');
  c.textContent = state;
  c.className = `conn conn-${state.replace(/[^a-z]/g, '')}`;
  const b = $('banner');
  if (state === 'online') { b.hidden = true; b.textContent = ''; }
}

function wsOpen() {
  clearTimeout(WS.retryTimer);
  WS.closedByUs = false;
  WS.ready = false;
  let sock;
  try { sock = new WebSocket(wsUrl()); } catch { scheduleReconnect(); return; }
  WS.sock = sock;
  setConn('connecting');
  sock.onopen = () => {
    const resume = {};
    for (const [room, seq] of Object.entries(S.cursors)) if (seq > 0) resume[room] = seq;
    sendReq('connect', {
      protocol: 2, client: 'clawnet-dashboard/1', presence: true, worker: false, resume,
    }, true).then(onConnected, (e) => { toast(`connect refused: ${errText(e)}`, 'bad'); sock.close(); });
  };
  sock.onmessage = (ev) => {
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    if (f.type === 'res') {
      const p = WS.pending.get(f.id);
      if (p) {
        WS.pending.delete(f.id);
        clearTimeout(p.timer);
        if (f.ok) p.resolve(f.result);
        else p.reject(new ApiError(0, f.error));
      }
    } else if (f.type === 'event') onEvent(f);
  };
  let opened = false;
  sock.addEventListener('open', () => { opened = true; });
  sock.onclose = () => {
    if (WS.sock !== sock) return;
    if (!opened && WS.attempt >= 1) checkToken();
    WS.ready = false;
    clearInterval(WS.pingTimer);
    for (const p of WS.pending.values()) { clearTimeout(p.timer); p.reject(new ApiError(0, { code: 'unavailable', message: 'disconnected' })); }
    WS.pending.clear();
    if (!WS.closedByUs) scheduleReconnect();
  };
  sock.onerror = () => {};
}

// The upgrade failed again: find out whether the token is still good (a
// browser cannot read the 401 of a refused WebSocket upgrade).
async function checkToken() {
  try {
    const res = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${S.token}` } });
    if (res.status === 401) logout('The hub no longer accepts this token (revoked, or the hub was reset).');
  } catch { /* hub unreachable: keep retrying */ }
}

function scheduleReconnect() {
  WS.attempt += 1;
  const base = Math.min(15000, 500 * 2 ** Math.min(WS.attempt - 1, 5));
  const delay = Math.round(base / 2 + Math.random() * base / 2);
  setConn('reconnecting');
  const b = $('banner');
  b.hidden = false;
  b.textContent = `Connection lost: reconnecting… (attempt ${WS.attempt}, next try in ${Math.ceil(delay / 1000)} s)`;
  clearTimeout(WS.retryTimer);
  WS.retryTimer = setTimeout(wsOpen, delay);
}

function sendReq(method, params, pre) {
  return new Promise((resolve, reject) => {
    const s = WS.sock;
    if (!s || s.readyState !== WebSocket.OPEN || (!WS.ready && !pre)) {
      reject(new ApiError(0, { code: 'unavailable', message: 'not connected; try again in a moment' }));
      return;
    }
    const id = WS.nextId++;
    const timer = setTimeout(() => {
      if (WS.pending.delete(id)) reject(new ApiError(0, { code: 'unavailable', message: 'no answer from the hub' }));
    }, 20000);
    WS.pending.set(id, { resolve, reject, timer });
    s.send(JSON.stringify({ type: 'req', id, method, params: params || {} }));
  });
}

async function onConnected(res) {
  WS.ready = true;
  WS.attempt = 0;
  WS.everConnected = true;
  setConn('online');
  clearInterval(WS.pingTimer);
  WS.pingTimer = setInterval(() => { sendReq('ping').catch(() => {}); }, Math.max(2000, (res.heartbeat_interval_ms || 15000) - 2000));
  const first = !WS.routed;
  WS.routed = true;
  // The record from login (`GET /api/v1/me`) holds the role; the connect
  // result confirms the id and the current handle.
  S.me = { ...S.me, agent_id: res.agent_id, handle: res.handle || (S.me && S.me.handle) };
  await refreshRooms();
  refreshPresence();
  if (first) { route(); return; }
  // A reconnect: keep the page (and any draft in the composer), catch up.
  if (S.route.name === 'chat' && chatEls && chatEls.key === S.route.arg) {
    const key = S.route.arg;
    await loadHistory(key);
    renderChatHead(key);
    renderTimelineSoon();
  }
}

function applyRole() {
  const staff = S.role === 'master' || S.role === 'warden';
  document.querySelectorAll('.staff').forEach((el) => { el.hidden = !staff; });
  $('whoami').textContent = `@${S.me.handle} · ${S.role}`;
  if (staff) refreshQuarantineCount();
}
const isStaff = () => S.role === 'master' || S.role === 'warden';
const isMaster = () => S.role === 'master';

// ---------- events ----------
function roomState(key) {
  let r = S.rooms.get(key);
  if (!r) {
    r = { info: null, msgs: new Map(), unread: 0, readTo: 0, loaded: false };
    S.rooms.set(key, r);
  }
  return r;
}

function onEvent(f) {
  const d = f.data || {};
  switch (f.event) {
    case 'message': {
      const key = f.room;
      const r = roomState(key);
      const known = r.info || key === 'global';
      r.msgs.set(d.seq, d);
      trimRoom(r);
      if ((S.cursors[key] || 0) < d.seq) S.cursors[key] = d.seq;
      if (r.info && r.info.last_seq < d.seq) r.info.last_seq = d.seq;
      const viewing = S.route.name === 'chat' && S.route.arg === key && !document.hidden;
      if (viewing) { r.readTo = Math.max(r.readTo, d.seq); scheduleAck(key); }
      else if (d.seq > r.readTo && d.from_id !== (S.me && S.me.agent_id)) {
        r.unread += 1;
        // Someone asked for me somewhere else: say so, and mark the room.
        if (S.me && (d.mentions || []).includes(S.me.agent_id)) {
          r.mentioned = true;
          toast(`@${d.from_handle} mentioned you in ${roomLabel(key)}`);
        }
      }
      if (d.payload && d.payload.task_id) noteTaskFromMessage(d);
      // a typing indicator ends with the message
      const tm = S.typing.get(key);
      if (tm) tm.delete(d.from_handle);
      if (!known) refreshRooms();
      renderSidebarSoon();
      if (S.route.name === 'chat' && S.route.arg === key) renderTimelineSoon();
      break;
    }
    case 'message.deleted': {
      const r = S.rooms.get(d.room || f.room);
      const m = r && r.msgs.get(d.seq);
      if (m) {
        m.payload = {};
        m.deleted = true;
        m.deleted_by = d.deleted_by;
        m.deleted_at = d.deleted_at;
        delete m.mentions;
        if (S.route.name === 'chat' && S.route.arg === (d.room || f.room)) renderTimelineSoon();
      }
      break;
    }
    case 'replay.reset': {
      delete S.cursors[f.room];
      const r = S.rooms.get(f.room);
      if (r) { r.msgs.clear(); r.readTo = 0; r.unread = 0; }
      if (S.route.name === 'chat' && S.route.arg === f.room) renderTimelineSoon();
      break;
    }
    case 'replay.gap':
      break;
    case 'replay.done':
      renderSidebarSoon();
      break;
    case 'typing': {
      if (!S.typing.has(f.room)) S.typing.set(f.room, new Map());
      const tm = S.typing.get(f.room);
      if (d.typing) tm.set(d.from_handle, Date.now() + 6000);
      else tm.delete(d.from_handle);
      renderTyping();
      break;
    }
    case 'presence':
      S.presence.set(d.agent_id, d);
      if (S.route.name === 'presence') renderPresenceTable();
      renderSidebarSoon();
      break;
    case 'room.joined':
    case 'room.left':
      refreshRooms();
      if (S.route.name === 'rooms') loadRoomsView();
      break;
    case 'task.updated':
      if (d.task) {
        S.tasks.set(d.task.task_id, d.task);
        if (S.route.name === 'task' && S.route.arg === d.task.task_id) renderTaskDetail(d.task);
        if (S.route.name === 'tasks') loadTasks();
      }
      break;
    case 'disconnecting':
      toast(`hub closing the connection: ${d.reason}`, 'bad');
      if (d.reason === 'token_revoked') { WS.closedByUs = true; logout('Your token was revoked.'); }
      break;
    default:
      break;
  }
}

function trimRoom(r) {
  if (r.msgs.size <= 600) return;
  const seqs = [...r.msgs.keys()].sort((a, b) => a - b);
  for (const s of seqs.slice(0, seqs.length - 500)) r.msgs.delete(s);
}

function noteTaskFromMessage(env) {
  const p = env.payload;
  const t = S.tasks.get(p.task_id);
  if (t && p.task_state) t.state = p.task_state;
}

const ackTimers = new Map();
function scheduleAck(room) {
  if (ackTimers.has(room)) return;
  ackTimers.set(room, setTimeout(() => {
    ackTimers.delete(room);
    const seq = S.cursors[room];
    const r = S.rooms.get(room);
    if (!seq || !r || !r.info || !r.info.member) return;
    sendReq('ack', { room, seq }).catch(() => {});
  }, 600));
}

// ---------- rooms ----------
async function refreshRooms() {
  try {
    const [rooms, dms] = await Promise.all([api('GET', '/rooms?limit=1000'), api('GET', '/dms?limit=1000')]);
    const seen = new Set();
    for (const info of rooms.rooms) {
      const r = roomState(info.name);
      r.info = info;
      seen.add(info.name);
      if ((S.cursors[info.name] || 0) > info.last_seq) info.last_seq = S.cursors[info.name];
    }
    for (const dm of dms.dms) S.dms.set(dm.room, dm);
    for (const [k, r] of S.rooms) if (!seen.has(k) && r.info) r.info = null;
  } catch (e) {
    if (e.status === 401) { logout('The hub no longer accepts this token.'); return; }
  }
  renderSidebar();
}

function roomLabel(key) {
  if (key.startsWith('dm:')) {
    const dm = S.dms.get(key);
    if (dm && dm.with) return `@${dm.with.handle}`;
    const parts = key.split(':').slice(1);
    const other = parts.find((p) => p !== (S.me && S.me.agent_id)) || parts[0];
    const pe = S.presence.get(other);
    return `@${pe ? pe.handle : other}`;
  }
  return key === 'global' ? '# global' : `# ${key}`;
}

let sidebarQueued = false;
function renderSidebarSoon() {
  if (sidebarQueued) return;
  sidebarQueued = true;
  requestAnimationFrame(() => { sidebarQueued = false; renderSidebar(); });
}
function renderSidebar() {
  const rl = $('room-list');
  const dl = $('dm-list');
  const rooms = [];
  const dms = [];
  for (const [key, r] of S.rooms) {
    const member = key === 'global' || (r.info && r.info.member);
    const current = S.route.name === 'chat' && S.route.arg === key;
    if (!member && !current) continue;
    (key.startsWith('dm:') ? dms : rooms).push(key);
  }
  rooms.sort((a, b) => (a === 'global' ? -1 : b === 'global' ? 1 : a.localeCompare(b)));
  dms.sort();
  const item = (key) => {
    const r = S.rooms.get(key);
    const current = S.route.name === 'chat' && S.route.arg === key;
    const a = h('a', {
      href: `#/chat/${enc(key)}`, class: current ? 'active' : '', testid: `room-link-${key}`,
      'aria-current': current ? 'page' : null,
    }, h('span', { class: 'rname', text: roomLabel(key) }));
    if (r.info && r.info.private && r.info.kind === 'room') a.append(h('span', { class: 'lock', text: 'private', 'aria-label': 'private' }));
    if (key.startsWith('dm:')) {
      const other = key.split(':').slice(1).find((p) => p !== S.me.agent_id);
      const pe = S.presence.get(other);
      if (pe) a.prepend(h('span', { class: `dot ${pe.status}`, title: pe.status }));
    }
    if (current) r.mentioned = false;
    if (r.mentioned) a.append(h('span', { class: 'badge mention-badge', testid: `mentioned-${key}`, text: '@', 'aria-label': 'you were mentioned' }));
    if (r.unread > 0 && !current) a.append(h('span', { class: 'badge', testid: `unread-${key}`, text: r.unread, 'aria-label': `${r.unread} unread` }));
    return h('li', null, a);
  };
  rl.replaceChildren(...rooms.map(item));
  let unread = 0;
  for (const r of S.rooms.values()) unread += r.unread;
  document.title = unread ? `(${unread}) clawnet` : 'clawnet';
  dl.replaceChildren(...(dms.length ? dms.map(item) : [h('li', { class: 'muted small', text: 'none yet' })]));
  document.querySelectorAll('.nav a').forEach((a) => {
    const on = a.dataset.route === S.route.name || (a.dataset.route === 'tasks' && S.route.name === 'task');
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
}

// ---------- router ----------
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '').split('?')[0];
  const [name, ...rest] = raw.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
  if (!name) return { name: 'chat', arg: 'global' };
  if (name === 'chat') return { name: 'chat', arg: arg || 'global' };
  if (name === 'tasks' && arg) return { name: 'task', arg };
  return { name, arg };
}

function clearTimers() {
  for (const t of S.timers) clearInterval(t);
  S.timers = [];
}
function every(ms, fn) { S.timers.push(setInterval(fn, ms)); }

function route() {
  if (!S.me) return;
  clearTimers();
  S.route = parseHash();
  closeMenu();
  const v = $('view');
  v.replaceChildren();
  const { name, arg } = S.route;
  const views = {
    chat: () => renderChat(arg), rooms: renderRoomsView, presence: renderPresenceView,
    tasks: renderTasksView, task: () => renderTaskView(arg), queues: renderQueuesView,
    audit: renderAuditView, quarantine: renderQuarantineView,
  };
  (views[name] || renderNotFound)();
  renderSidebar();
}

function renderNotFound() {
  $('view').append(h('section', { class: 'panel' }, h('h1', { text: 'Not found' }),
    h('p', null, 'No such page. ', h('a', { href: '#/chat/global', text: 'Back to chat' }))));
}

function forbiddenView(title) {
  $('view').append(h('section', { class: 'panel', testid: 'forbidden' },
    h('h1', { text: title }),
    h('p', { class: 'notice', role: 'alert', text: `Not allowed: your role (${S.role}) cannot see this page. Ask a master or warden.` })));
}

// ---------- chat ----------
let chatEls = null;
async function renderChat(key) {
  const r = roomState(key);
  r.unread = 0;
  const head = h('header', { class: 'chat-head' },
    h('h1', { testid: 'room-title', text: roomLabel(key) }),
    h('span', { class: 'muted small', testid: 'room-meta' }),
    h('span', { class: 'spacer' }));
  const timeline = h('ol', { class: 'timeline', testid: 'timeline', role: 'log', 'aria-label': `Messages in ${roomLabel(key)}`, tabindex: '0' });
  const older = h('button', { type: 'button', class: 'ghost older', testid: 'load-older', text: 'Load older messages', hidden: true, onclick: () => loadOlder(key) });
  const typing = h('div', { class: 'typing', testid: 'typing', 'aria-live': 'polite' });
  const input = h('input', {
    id: 'composer-input', type: 'text', autocomplete: 'off', testid: 'composer-input', maxlength: '8000',
    placeholder: 'Message… (@handle, /task @handle text, /status)', 'aria-autocomplete': 'list', 'aria-controls': 'complete-list',
  });
  const list = h('ul', { id: 'complete-list', class: 'complete', role: 'listbox', hidden: true, testid: 'complete-list' });
  const send = h('button', { type: 'submit', class: 'primary', testid: 'composer-send', text: 'Send' });
  const form = h('form', { class: 'composer', testid: 'composer' },
    h('label', { for: 'composer-input', class: 'sr', text: 'Message' }), list, input, send);
  const joinBar = h('div', { class: 'joinbar', hidden: true, testid: 'join-bar' });
  const wrap = h('section', { class: 'chat' }, head, older, timeline, typing, joinBar, form);
  $('view').append(wrap);
  chatEls = { key, timeline, older, typing, head, input, joinBar, form, cache: new Map(), empty: null, meta: head.querySelector('[data-testid=room-meta]') };
  setupComposer(key, form, input, list);
  renderChatHead(key);
  renderTimeline(true);
  renderTyping();
  every(1000, renderTyping);
  // A room created since the list was read (a link, or a room the viewer is
  // not in): read the list again before its history.
  if (!r.info && key !== 'global' && !key.startsWith('dm:')) await refreshRooms();
  await loadHistory(key);
  if (S.route.name === 'chat' && S.route.arg === key) {
    renderChatHead(key);
    renderTimeline(true);
    const seq = S.cursors[key];
    if (seq) { r.readTo = Math.max(r.readTo, seq); scheduleAck(key); }
  }
}

function renderChatHead(key) {
  if (!chatEls || chatEls.key !== key) return;
  const r = S.rooms.get(key);
  const info = r && r.info;
  const meta = [];
  if (info) {
    meta.push(info.kind === 'dm' ? 'direct message' : info.private ? 'private room' : info.kind === 'global' ? 'everyone' : 'public room');
    meta.push(`${info.member_count} member${info.member_count === 1 ? '' : 's'}`);
  } else if (key.startsWith('dm:')) meta.push('new direct message');
  chatEls.meta.textContent = meta.join(' · ');
  const head = chatEls.head;
  head.querySelectorAll('.head-act').forEach((b) => b.remove());
  if (info && info.kind === 'room') {
    head.append(h('a', { class: 'btn ghost head-act', href: `#/rooms/${enc(key)}`, text: 'Members', testid: 'room-manage' }));
  }
  const canPost = key === 'global' || key.startsWith('dm:') || (info && (info.member || isMaster()));
  chatEls.joinBar.replaceChildren();
  chatEls.joinBar.hidden = canPost || !info;
  chatEls.form.hidden = !canPost;
  if (!canPost && info) {
    chatEls.joinBar.append(h('span', { text: `You are reading ${roomLabel(key)} without being a member. ` }),
      h('button', { type: 'button', class: 'primary', testid: 'room-join', text: 'Join room', onclick: () => joinRoom(key) }));
  }
}

async function loadHistory(key) {
  const r = S.rooms.get(key);
  if (!r || (!r.info && key !== 'global')) return; // unknown room or a DM not started yet
  const last = r.info ? r.info.last_seq : 0;
  try {
    const res = await api('GET', `/rooms/${enc(key)}/history?after_seq=${Math.max(0, last - 100)}&limit=200`);
    for (const m of res.messages) if (!r.msgs.has(m.seq) || m.deleted) r.msgs.set(m.seq, m);
    if (res.last_seq > (S.cursors[key] || 0) && r.info && r.info.member) S.cursors[key] = Math.max(S.cursors[key] || 0, res.last_seq);
    r.loaded = true;
  } catch (e) {
    toast(errText(e), 'bad');
  }
}

let tlQueued = false;
function renderTimelineSoon() {
  if (tlQueued) return;
  tlQueued = true;
  requestAnimationFrame(() => { tlQueued = false; renderTimeline(false); });
}

function renderTimeline(forceBottom) {
  if (!chatEls) return;
  const { key, timeline, cache } = chatEls;
  const r = S.rooms.get(key);
  const nearBottom = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 80;
  const seqs = r ? [...r.msgs.keys()].sort((a, b) => a - b) : [];
  // Keyed, incremental: an unchanged message keeps its element, so focus,
  // selection and the live region are not disturbed by new arrivals.
  const want = [];
  const keep = new Set();
  for (const s of seqs) {
    const m = r.msgs.get(s);
    const st = m.payload && m.payload.task_id ? (m.payload.task_state || (S.tasks.get(m.payload.task_id) || {}).state) : '';
    const sig = `${m.id}|${m.deleted ? 1 : 0}|${st}`;
    let c = cache.get(s);
    if (!c || c.sig !== sig) { c = { sig, el: renderMessage(key, m) }; cache.set(s, c); }
    want.push(c.el);
    keep.add(s);
  }
  for (const s of [...cache.keys()]) if (!keep.has(s)) cache.delete(s);
  if (!want.length) {
    if (!chatEls.empty) chatEls.empty = h('li', { class: 'empty muted', text: 'No messages yet. Say hello.' });
    want.push(chatEls.empty);
  }
  let cur = timeline.firstChild;
  for (const el of want) {
    if (cur === el) { cur = cur.nextSibling; continue; }
    timeline.insertBefore(el, cur);
  }
  while (cur) { const n = cur.nextSibling; cur.remove(); cur = n; }
  // Older history is one click away while the first loaded message is not seq 1.
  chatEls.older.hidden = !(seqs.length && seqs[0] > 1) || !!(r && r.noOlder);
  if (forceBottom || nearBottom) timeline.scrollTop = timeline.scrollHeight;
}

// Up to 100 messages before the oldest one shown, keeping the reader's place.
async function loadOlder(key) {
  const r = S.rooms.get(key);
  if (!r || !r.msgs.size || !chatEls || chatEls.key !== key) return;
  const oldest = Math.min(...r.msgs.keys());
  if (oldest <= 1) return;
  const after = Math.max(0, oldest - 1 - 100);
  const tl = chatEls.timeline;
  const fromBottom = tl.scrollHeight - tl.scrollTop;
  try {
    const res = await api('GET', `/rooms/${enc(key)}/history?after_seq=${after}&limit=${oldest - 1 - after}`);
    const got = res.messages.filter((m) => m.seq < oldest);
    for (const m of got) if (!r.msgs.has(m.seq)) r.msgs.set(m.seq, m);
    // Nothing older came back: the rest is past the room's retention.
    if (!got.length) { r.noOlder = true; toast('No older messages: the rest is past this room\'s retention.'); }
  } catch (e) { toast(errText(e), 'bad'); return; }
  if (!chatEls || chatEls.key !== key) return;
  renderTimeline(false);
  tl.scrollTop = tl.scrollHeight - fromBottom;
}

function renderMessage(key, m) {
  const mine = S.me && m.from_id === S.me.agent_id;
  const sys = m.from_id === 'clawnet';
  const li = h('li', {
    class: `msg${mine ? ' mine' : ''}${sys ? ' system' : ''}${m.deleted ? ' deleted' : ''}${S.me && (m.mentions || []).includes(S.me.agent_id) ? ' mentions-me' : ''}`,
    testid: 'message', dataset: { seq: String(m.seq), from: m.from_handle, id: m.id },
  });
  const meta = h('div', { class: 'meta' },
    h('span', { class: 'from', text: `@${m.from_handle}` }),
    h('time', { datetime: new Date(m.ts).toISOString(), text: fmtTime(m.ts), title: new Date(m.ts).toString() }),
    h('span', { class: 'seq muted', text: `#${m.seq}` }));
  li.append(meta);
  if (m.deleted) {
    li.append(h('div', { class: 'text tombstone', testid: 'message-deleted', text: `message deleted${m.deleted_by ? ` by @${handleOf(m.deleted_by)}` : ''}` }));
    return li;
  }
  const p = m.payload || {};
  const text = typeof p.text === 'string' ? p.text : null;
  const body = h('div', { class: 'text', testid: 'message-text' });
  if (text !== null) appendWithMentions(body, text);
  else body.append(h('code', { text: JSON.stringify(p) }));
  li.append(body);
  if (p.task_id) {
    const st = p.task_state || (S.tasks.get(p.task_id) || {}).state || 'task';
    li.append(h('a', {
      class: `chip st-${st}`, href: `#/tasks/${enc(p.task_id)}`, testid: 'task-link',
      dataset: { taskId: p.task_id, state: st }, text: `${p.task_id} · ${st}`,
    }));
  }
  if (mine || isMaster()) {
    meta.append(h('button', {
      type: 'button', class: 'link danger small', testid: 'message-delete', text: 'Delete',
      'aria-label': `Delete message ${m.seq}`,
      onclick: () => deleteMessage(key, m.seq),
    }));
  }
  return li;
}

function handleOf(id) {
  const p = S.presence.get(id);
  return p ? p.handle : id;
}

function appendWithMentions(el, text) {
  const re = /(^|[^A-Za-z0-9_-])(@[A-Za-z0-9_-]{2,32})/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    const start = m.index + m[1].length;
    el.append(text.slice(last, start));
    el.append(h('span', { class: 'mention', text: m[2] }));
    last = start + m[2].length;
  }
  el.append(text.slice(last));
}

async function deleteMessage(key, seq) {
  if (!window.confirm(`Delete message #${seq}? Members will see a tombstone.`)) return;
  try {
    const res = await api('DELETE', `/rooms/${enc(key)}/messages/${seq}`);
    const r = S.rooms.get(key);
    if (r && res.message) r.msgs.set(seq, res.message);
    renderTimelineSoon();
  } catch (e) { toast(errText(e), 'bad'); }
}

async function joinRoom(key) {
  try {
    const info = await api('POST', `/rooms/${enc(key)}/join`);
    roomState(key).info = info;
    toast(`Joined ${roomLabel(key)}`);
    await refreshRooms();
    if (S.route.name === 'chat' && S.route.arg === key) renderChatHead(key);
    if (S.route.name === 'rooms') loadRoomsView();
  } catch (e) { toast(errText(e), 'bad'); }
}

function renderTyping() {
  if (!chatEls || !chatEls.typing.isConnected) return;
  const tm = S.typing.get(chatEls.key);
  const now = Date.now();
  const who = [];
  if (tm) for (const [handle, exp] of tm) { if (exp > now) who.push(`@${handle}`); else tm.delete(handle); }
  chatEls.typing.textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '';
}

const COMMANDS = [
  { value: '/task @', label: '/task @handle text', hint: 'dispatch a task to an agent' },
  { value: '/status', label: '/status', hint: 'what every agent is doing' },
  { value: '/help', label: '/help', hint: 'list the commands' },
];

function setupComposer(key, form, input, list) {
  let items = [];
  let sel = 0;
  let lastTyping = 0;
  const close = () => { list.hidden = true; items = []; input.removeAttribute('aria-activedescendant'); };
  const show = () => {
    list.replaceChildren(...items.map((it, i) => h('li', {
      id: `cmp-${i}`, role: 'option', 'aria-selected': i === sel ? 'true' : 'false', class: i === sel ? 'sel' : '',
      testid: 'complete-item', onmousedown: (ev) => { ev.preventDefault(); accept(i); },
    }, h('strong', { text: it.label }), it.hint ? h('span', { class: 'muted', text: ` ${it.hint}` }) : null)));
    list.hidden = !items.length;
    if (items.length) input.setAttribute('aria-activedescendant', `cmp-${sel}`);
  };
  const context = () => {
    const pos = input.selectionStart || 0;
    const before = input.value.slice(0, pos);
    const m = /(^|\s)@([A-Za-z0-9_-]*)$/.exec(before);
    if (m) return { kind: 'mention', start: pos - m[2].length - 1, prefix: m[2].toLowerCase(), pos };
    if (/^\/[a-z]*$/.test(before)) return { kind: 'command', start: 0, prefix: before, pos };
    return null;
  };
  const update = () => {
    const c = context();
    if (!c) { close(); return; }
    if (c.kind === 'mention') {
      const handles = [...S.presence.values()].map((p) => p.handle).filter((x) => x !== 'clawnet').sort();
      items = handles.filter((x) => x.toLowerCase().startsWith(c.prefix)).slice(0, 8)
        .map((x) => ({ value: `@${x} `, label: `@${x}`, hint: (S.presence.get([...S.presence.values()].find((p) => p.handle === x).agent_id) || {}).status }));
    } else {
      items = COMMANDS.filter((x) => x.value.startsWith(c.prefix));
    }
    sel = 0;
    show();
  };
  const accept = (i) => {
    const it = items[i];
    const c = context();
    if (!it || !c) { close(); return; }
    const v = input.value;
    input.value = v.slice(0, c.start) + it.value + v.slice(c.pos);
    const caret = c.start + it.value.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
    if (it.value.endsWith('@')) update();
  };
  input.addEventListener('input', () => {
    update();
    const now = Date.now();
    if (input.value && now - lastTyping > 2500 && key !== null && canTyping(key)) {
      lastTyping = now;
      sendReq('typing', { room: key, typing: true }).catch(() => {});
    }
  });
  input.addEventListener('keydown', (ev) => {
    if (list.hidden || !items.length) return;
    if (ev.key === 'ArrowDown') { sel = (sel + 1) % items.length; show(); ev.preventDefault(); }
    else if (ev.key === 'ArrowUp') { sel = (sel - 1 + items.length) % items.length; show(); ev.preventDefault(); }
    else if (ev.key === 'Tab' || ev.key === 'Enter') { accept(sel); ev.preventDefault(); }
    else if (ev.key === 'Escape') { close(); ev.preventDefault(); }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const params = { payload: { text }, dedupe_key: `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}` };
    if (key === 'global') params.to_type = 'global';
    else if (key.startsWith('dm:')) {
      params.to_type = 'dm';
      params.to_id = key.split(':').slice(1).find((p) => p !== S.me.agent_id);
    } else { params.to_type = 'room'; params.to_id = key; }
    input.disabled = true;
    try {
      let res;
      try { res = await sendReq('chat.send', params); } catch (e) {
        if (e.code !== 'unavailable') throw e;
        res = await api('POST', '/messages', params); // same dedupe key: safe to resend
      }
      input.value = '';
      lastTyping = 0;
      if (res && res.message) {
        const r = roomState(res.message.to_id);
        r.msgs.set(res.message.seq, res.message);
        if (!r.info) refreshRooms();
        renderTimelineSoon();
      }
    } catch (e) {
      toast(errText(e), e.code === 'held' ? 'warn' : 'bad');
      if (e.code === 'held') input.value = '';
    } finally {
      input.disabled = false;
      input.focus();
    }
  });
}

function canTyping(key) {
  if (key === 'global') return true;
  const r = S.rooms.get(key);
  return !!(r && r.info && r.info.member);
}

// ---------- rooms view ----------
// The forms are built once per visit; only the table and the member list are
// refreshed, so a live event never wipes what someone is typing.
function renderRoomsView() {
  const sel = S.route.arg;
  const nameIn = h('input', { id: 'room-new-name', type: 'text', required: true, pattern: '[a-z0-9][a-z0-9._\\-]{0,63}', testid: 'room-create-name', placeholder: 'ops' });
  const privIn = h('input', { id: 'room-new-private', type: 'checkbox', testid: 'room-create-private' });
  const create = h('form', { class: 'inline-form', testid: 'room-create' },
    h('label', { for: 'room-new-name', text: 'New room' }), nameIn,
    h('label', { class: 'check' }, privIn, ' private'),
    h('button', { type: 'submit', class: 'primary', text: 'Create', testid: 'room-create-submit' }));
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameIn.value.trim().toLowerCase();
    if (!name) return;
    try {
      const info = await api('POST', '/rooms', { name, private: privIn.checked });
      roomState(info.name).info = info;
      toast(`Created ${info.private ? 'private' : 'public'} room ${info.name}`);
      nameIn.value = '';
      privIn.checked = false;
      await refreshRooms();
      location.hash = `#/rooms/${enc(info.name)}`;
    } catch (e) { toast(errText(e), 'bad'); }
  });
  const parts = [h('h1', { text: 'Rooms' }), create, h('div', { id: 'rooms-table-wrap' })];
  if (sel) {
    const who = h('input', { id: 'invite-agent', type: 'text', placeholder: '@handle or id', testid: 'room-invite-agent', required: true });
    const inv = h('form', { class: 'inline-form', testid: 'room-invite', id: 'room-invite-form' },
      h('label', { for: 'invite-agent', text: 'Invite' }), who,
      h('button', { type: 'submit', class: 'primary', text: 'Invite', testid: 'room-invite-submit' }));
    inv.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const a = agentRef(who.value);
      if (!a) return;
      try {
        await api('POST', `/rooms/${enc(sel)}/invite`, { agent: a });
        toast(`Invited ${a} to ${sel}`);
        who.value = '';
        loadRoomsView();
      } catch (e) { toast(errText(e), 'bad'); }
    });
    parts.push(h('section', { class: 'sub', testid: 'room-detail' },
      h('h2', { id: 'room-detail-title', text: sel }),
      h('ul', { class: 'members', id: 'room-members', testid: 'room-members' }),
      h('p', { class: 'muted', id: 'room-invite-hint', hidden: true, text: 'Join the room to invite others.' }),
      inv));
  }
  $('view').append(h('section', { class: 'panel' }, parts));
  loadRoomsView();
}

let roomsGen = 0;
async function loadRoomsView() {
  const my = ++roomsGen;
  await refreshRooms();
  if (my !== roomsGen || S.route.name !== 'rooms' || !$('rooms-table-wrap')) return;
  const rows = [...S.rooms.values()].filter((r) => r.info && r.info.kind === 'room').sort((a, b) => a.info.name.localeCompare(b.info.name));
  $('rooms-table-wrap').replaceChildren(rows.length ? h('table', { class: 'grid', testid: 'rooms-table' },
    h('thead', null, h('tr', null, ['Room', 'Visibility', 'Members', 'Messages', 'Created by', ''].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, rows.map(({ info }) => h('tr', { testid: 'room-row', dataset: { room: info.name } },
      h('td', null, h('a', { href: `#/rooms/${enc(info.name)}`, text: info.name })),
      h('td', { text: info.private ? 'private' : 'public' }),
      h('td', { text: info.member_count }),
      h('td', { text: info.last_seq }),
      h('td', { text: info.created_by || '—' }),
      h('td', { class: 'actions' },
        h('a', { class: 'btn ghost', href: `#/chat/${enc(info.name)}`, text: 'Open' }),
        info.member
          ? h('button', { type: 'button', class: 'ghost', text: 'Leave', testid: 'room-leave', onclick: () => leaveRoom(info.name) })
          : h('button', { type: 'button', class: 'ghost', text: 'Join', testid: 'room-join', onclick: () => joinRoom(info.name) }))))))
    : h('p', { class: 'muted', text: 'No named rooms yet.' }));
  const sel = S.route.arg;
  const ul = $('room-members');
  if (!sel || !ul) return;
  const r = S.rooms.get(sel);
  if (!r || !r.info) {
    $('room-detail-title').textContent = `${sel}: not found, or not visible to you`;
    $('room-invite-form').hidden = true;
    return;
  }
  const info = r.info;
  $('room-detail-title').textContent = `${sel} (${info.private ? 'private' : 'public'}, ${info.member_count} member${info.member_count === 1 ? '' : 's'})`;
  const canInvite = info.member || isStaff();
  $('room-invite-form').hidden = !canInvite;
  $('room-invite-hint').hidden = canInvite;
  let members = [];
  try { members = (await api('GET', `/rooms/${enc(sel)}/members?limit=1000`)).members; } catch (e) { toast(errText(e), 'bad'); return; }
  if (my !== roomsGen || !ul.isConnected) return;
  ul.replaceChildren(...members.map((m) => {
    const p = S.presence.get(m);
    return h('li', null, h('span', { class: `dot ${p ? p.status : 'offline'}` }), ` @${p ? p.handle : m} `, h('span', { class: 'muted small', text: m }));
  }));
}

async function leaveRoom(name) {
  try {
    await api('POST', `/rooms/${enc(name)}/leave`);
    toast(`Left ${name}`);
    await refreshRooms();
    if (S.route.name === 'rooms') loadRoomsView();
  } catch (e) { toast(errText(e), 'bad'); }
}

// ---------- presence ----------
async function refreshPresence() {
  try {
    const [p, a] = await Promise.all([api('GET', '/presence'), api('GET', '/activity')]);
    S.presence = new Map(p.agents.map((x) => [x.agent_id, x]));
    S.activity = new Map(a.agents.map((x) => [x.agent_id, x]));
  } catch { /* shown on next refresh */ }
  if (S.route.name === 'presence') renderPresenceTable();
  renderSidebarSoon();
}

function renderPresenceView() {
  $('view').append(h('section', { class: 'panel' },
    h('h1', { text: 'Presence' }),
    h('p', { class: 'muted', text: 'Live: online, idle or offline, and what each agent is working on.' }),
    h('div', { id: 'presence-wrap' })));
  renderPresenceTable();
  refreshPresence();
  every(4000, refreshPresence);
}

function renderPresenceTable() {
  const wrap = $('presence-wrap');
  if (!wrap) return;
  const agents = [...S.presence.values()].sort((a, b) => a.handle.localeCompare(b.handle));
  const order = { online: 0, idle: 1, offline: 2 };
  agents.sort((a, b) => (order[a.status] - order[b.status]) || a.handle.localeCompare(b.handle));
  wrap.replaceChildren(h('table', { class: 'grid', testid: 'presence-table' },
    h('thead', null, h('tr', null, ['Agent', 'Status', 'Since', 'Work', 'Working on', 'Activity', ''].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, agents.map((p) => {
      const act = S.activity.get(p.agent_id);
      const dmKey = p.agent_id !== S.me.agent_id && p.agent_id !== 'clawnet' ? `dm:${[p.agent_id, S.me.agent_id].sort().join(':')}` : null;
      return h('tr', { testid: 'presence-row', dataset: { agent: p.agent_id, status: p.status } },
        h('td', null, h('strong', { text: `@${p.handle}` }), h('div', { class: 'muted small', text: p.agent_id })),
        h('td', null, h('span', { class: `pill ${p.status}`, testid: 'presence-status', text: p.status }), p.connections ? h('span', { class: 'muted small', text: ` ${p.connections} conn` }) : null),
        h('td', { text: p.since ? fmtAgo(p.since) : 'never seen' }),
        h('td', { text: act ? `${act.status}${act.running ? ` · ${act.running} running` : ''}${act.queued ? ` · ${act.queued} queued` : ''}${act.paused ? ' · paused' : ''}` : '—' }),
        h('td', null, act && act.working_on.length ? act.working_on.map((t) => h('a', { class: 'chip st-running', href: `#/tasks/${enc(t)}`, text: t })) : '—'),
        h('td', { text: p.activity || '—' }),
        h('td', null, dmKey ? h('a', { class: 'btn ghost', href: `#/chat/${enc(dmKey)}`, text: 'Message', testid: 'presence-dm' }) : null));
    }))));
}

// ---------- tasks ----------
const STATES = ['queued', 'delayed', 'running', 'succeeded', 'failed', 'blocked', 'skipped', 'cancelled'];

function renderTasksView() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const stateSel = h('select', { id: 'task-state', testid: 'tasks-filter-state' },
    h('option', { value: '', text: 'any state' }), STATES.map((s) => h('option', { value: s, text: s })));
  stateSel.value = params.get('state') || S.taskFilter?.state || '';
  const targetIn = h('input', { id: 'task-target', type: 'text', placeholder: 'agent id', testid: 'tasks-filter-target', value: S.taskFilter?.target || '' });
  const form = h('form', { class: 'inline-form', testid: 'tasks-filter' },
    h('label', { for: 'task-state', text: 'State' }), stateSel,
    h('label', { for: 'task-target', text: 'Target' }), targetIn,
    h('button', { type: 'submit', class: 'ghost', text: 'Filter' }));
  const apply = () => { S.taskFilter = { state: stateSel.value, target: targetIn.value.trim() }; loadTasks(); };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  stateSel.addEventListener('change', apply);
  const dispatchForm = renderDispatchForm();
  $('view').append(h('section', { class: 'panel' }, h('h1', { text: 'Tasks' }), form, h('div', { id: 'tasks-wrap' }), dispatchForm));
  S.taskFilter = { state: stateSel.value, target: targetIn.value.trim() };
  loadTasks();
  every(3000, loadTasks);
}

function renderDispatchForm() {
  const to = h('input', { id: 'dispatch-to', type: 'text', placeholder: '@worker', required: true, testid: 'dispatch-target' });
  const text = h('input', { id: 'dispatch-text', type: 'text', placeholder: 'what to do', testid: 'dispatch-text' });
  const f = h('form', { class: 'inline-form', testid: 'dispatch-form' },
    h('label', { for: 'dispatch-to', text: 'Dispatch to' }), to,
    h('label', { for: 'dispatch-text', text: 'Text' }), text,
    h('button', { type: 'submit', class: 'primary', text: 'Dispatch', testid: 'dispatch-submit' }));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = agentRef(to.value);
    if (!t) return;
    try {
      const res = await api('POST', '/tasks', { target: t, kind: 'prompt', payload: { text: text.value } });
      location.hash = `#/tasks/${enc(res.task.task_id)}`;
    } catch (e) { toast(errText(e), e.code === 'held' ? 'warn' : 'bad'); }
  });
  return h('section', { class: 'sub' }, h('h2', { text: 'Dispatch a task' }), f);
}

let tasksGen = 0;
async function loadTasks() {
  const wrap = $('tasks-wrap');
  if (!wrap) return;
  const my = ++tasksGen;
  const q = new URLSearchParams({ limit: '1000' });
  const f = S.taskFilter || {};
  if (f.state) q.set('state', f.state);
  if (f.target) q.set('target', f.target.replace(/^@/, ''));
  let tasks;
  try {
    tasks = [];
    let after = null;
    for (let i = 0; i < 20; i++) {
      if (after) q.set('after', after);
      const res = await api('GET', `/tasks?${q}`);
      tasks.push(...res.tasks);
      if (!res.next) break;
      after = res.next;
    }
  } catch (e) { wrap.replaceChildren(h('p', { class: 'error', text: errText(e) })); return; }
  if (my !== tasksGen || !wrap.isConnected) return; // a newer load or another page
  for (const t of tasks) S.tasks.set(t.task_id, t);
  tasks.reverse(); // newest first
  wrap.replaceChildren(taskTable(tasks, 'tasks-table'));
}

function taskTable(tasks, testid) {
  if (!tasks.length) return h('p', { class: 'muted', testid, text: 'No tasks.' });
  return h('table', { class: 'grid', testid },
    h('thead', null, h('tr', null, ['Task', 'State', 'Target', 'Kind', 'Attempts', 'By', 'Updated', ''].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, tasks.map((t) => h('tr', { testid: 'task-row', dataset: { taskId: t.task_id, state: t.state } },
      h('td', null, h('a', { href: `#/tasks/${enc(t.task_id)}`, text: t.task_id, class: 'mono' })),
      h('td', null, h('span', { class: `pill st-${t.state}`, text: t.state })),
      h('td', { text: t.target }),
      h('td', { text: t.kind }),
      h('td', { text: `${t.attempts}/${t.max_attempts}` }),
      h('td', { text: t.dispatched_by }),
      h('td', { text: fmtAgo(t.updated_at) }),
      h('td', { class: 'actions' }, taskButtons(t))))));
}

function taskButtons(t, after) {
  const out = [];
  if (t.state === 'failed' && isMaster()) {
    out.push(h('button', { type: 'button', class: 'ghost', text: 'Retry', testid: 'task-retry', onclick: () => taskAction(t, 'retry', after) }));
  }
  if ((t.state === 'queued' || t.state === 'delayed') && (isMaster() || t.dispatched_by === S.me.agent_id)) {
    out.push(h('button', { type: 'button', class: 'ghost danger', text: 'Cancel', testid: 'task-cancel', onclick: () => taskAction(t, 'cancel', after) }));
  }
  return out;
}

async function taskAction(t, what, after) {
  try {
    const nt = await api('POST', `/tasks/${enc(t.task_id)}/${what}`);
    S.tasks.set(nt.task_id, nt);
    toast(`Task ${nt.task_id}: ${nt.state}`);
    if (after) after(nt);
    else if (S.route.name === 'tasks') loadTasks();
    else if (S.route.name === 'queues') loadQueues();
  } catch (e) { toast(errText(e), 'bad'); }
}

function renderTaskView(id) {
  $('view').append(h('section', { class: 'panel', id: 'task-panel' },
    h('p', null, h('a', { href: '#/tasks', text: '← All tasks' })),
    h('h1', { class: 'mono', text: id }),
    h('div', { id: 'task-wrap', testid: 'task-detail' }, h('p', { class: 'muted', text: 'Loading…' }))));
  const load = async () => {
    try {
      const t = await api('GET', `/tasks/${enc(id)}`);
      S.tasks.set(t.task_id, t);
      renderTaskDetail(t);
    } catch (e) {
      const w = $('task-wrap');
      if (w) w.replaceChildren(h('p', { class: 'error', text: errText(e) }));
    }
  };
  load();
  every(2000, () => {
    const t = S.tasks.get(id);
    if (!t || ['queued', 'delayed', 'running'].includes(t.state)) load();
  });
}

function renderTaskDetail(t) {
  const w = $('task-wrap');
  if (!w) return;
  const row = (k, v) => [h('dt', { text: k }), h('dd', null, v)];
  const origin = t.origin ? h('span', null,
    t.origin.room ? h('a', { href: `#/chat/${enc(t.origin.room)}`, text: roomLabel(t.origin.room), testid: 'task-origin-room' }) : '—',
    t.origin.message_id ? h('span', { class: 'muted small mono', text: ` message ${t.origin.message_id}` }) : null,
    t.origin.account ? h('span', { class: 'muted small', text: ` account ${t.origin.account}` }) : null,
    t.origin.session ? h('span', { class: 'muted small', text: ` session ${t.origin.session}` }) : null) : '—';
  w.replaceChildren(
    h('dl', { class: 'kv' },
      row('State', h('span', { class: `pill st-${t.state}`, testid: 'task-state', text: t.state })),
      row('Target', `@${handleOf(t.target)} (${t.target})`),
      row('Dispatched by', t.dispatched_by),
      row('Kind', t.kind),
      row('Attempts', h('span', { testid: 'task-attempts', text: `${t.attempts} of ${t.max_attempts}` })),
      row('Priority', String(t.priority)),
      row('Created', fmtTime(t.created_at)),
      row('Run at', fmtTime(t.run_at)),
      row('Started', fmtTime(t.started_at)),
      row('Finished', fmtTime(t.finished_at)),
      row('Updated', fmtTime(t.updated_at)),
      row('Backoff', `${t.backoff_base_ms} ms doubling, at most ${t.backoff_cap_ms} ms`),
      row('Origin', origin),
      t.dedupe_key ? row('Dedupe key', t.dedupe_key) : null),
    h('div', { class: 'actions' }, taskButtons(t, (nt) => renderTaskDetail(nt))),
    t.error ? h('section', { class: 'sub' }, h('h2', { text: 'Error' }), h('pre', { class: 'err', testid: 'task-error', text: t.error })) : null,
    t.result !== undefined && t.result !== null ? h('section', { class: 'sub' }, h('h2', { text: 'Result' }), h('pre', { testid: 'task-result', text: json(t.result) })) : null,
    h('section', { class: 'sub' }, h('h2', { text: 'Payload' }), h('pre', { text: json(t.payload) })));
}

// ---------- queues, schedules, dead letters ----------
function renderQueuesView() {
  $('view').append(h('section', { class: 'panel' },
    h('h1', { text: 'Queues' }), h('div', { id: 'queues-wrap' }),
    h('h2', { text: 'Schedules' }), scheduleForm(), h('div', { id: 'schedules-wrap' }),
    h('h2', { text: 'Dead letters' }), h('p', { class: 'muted' }, 'Tasks that used up their attempts (state failed). ',
      h('a', { href: '#/tasks?state=failed', text: 'Open in the task list' })),
    h('div', { id: 'dead-wrap' })));
  loadQueues();
  every(3000, loadQueues);
}

// Register a repeating task: target, cron (UTC) and the text it gets.
function scheduleForm() {
  const target = h('input', { id: 'sched-target', type: 'text', placeholder: '@worker', required: true, testid: 'sched-target' });
  const cron = h('input', { id: 'sched-cron', type: 'text', placeholder: '0 9 * * 1-5', required: true, class: 'mono', testid: 'sched-cron' });
  const text = h('input', { id: 'sched-text', type: 'text', placeholder: 'what to do', testid: 'sched-text' });
  const name = h('input', { id: 'sched-name', type: 'text', placeholder: 'optional', testid: 'sched-name' });
  return h('form', {
    class: 'inline-form', testid: 'schedule-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { target: agentRef(target.value), cron: cron.value.trim(), payload: { text: text.value } };
      if (name.value.trim()) body.name = name.value.trim();
      try {
        const r = await api('POST', '/schedules', body);
        toast(`Schedule ${r.schedule.name} registered`, 'good');
        cron.value = ''; text.value = ''; name.value = '';
        loadQueues();
      } catch (e) { toast(errText(e), 'bad'); }
    },
  },
  h('label', { for: 'sched-target', text: 'Target' }), target,
  h('label', { for: 'sched-cron', text: 'Cron (UTC)' }), cron,
  h('label', { for: 'sched-text', text: 'Text' }), text,
  h('label', { for: 'sched-name', text: 'Name' }), name,
  h('button', { type: 'submit', text: 'Add schedule' }));
}

// What a person typed for an agent: an id we know, else a handle.
function agentRef(v) {
  const t = v.trim();
  if (!t || t.startsWith('@') || S.presence.has(t)) return t;
  return `@${t}`;
}

let queuesGen = 0;
async function loadQueues() {
  if (!$('queues-wrap')) return;
  const my = ++queuesGen;
  let q;
  let s;
  let d;
  try {
    [q, s, d] = await Promise.all([api('GET', '/queues'), api('GET', '/schedules'), api('GET', '/tasks?state=failed&limit=1000')]);
  } catch (e) { $('queues-wrap').replaceChildren(h('p', { class: 'error', text: errText(e) })); return; }
  if (my !== queuesGen || !$('queues-wrap')) return;
  const cols = ['queued', 'delayed', 'running', 'succeeded', 'failed', 'cancelled'];
  $('queues-wrap').replaceChildren(q.queues.length ? h('table', { class: 'grid', testid: 'queues-table' },
    h('thead', null, h('tr', null, ['Queue', ...cols, 'Breaker', 'State', ''].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, q.queues.map((x) => h('tr', { testid: 'queue-row', dataset: { queue: x.name, paused: String(x.paused) } },
      h('td', null, h('strong', { text: `@${x.handle}` }), h('div', { class: 'muted small', text: x.name })),
      cols.map((c) => h('td', { class: 'num', dataset: { count: c }, text: (x.counts && x.counts[c]) || 0 })),
      h('td', null, h('span', { class: `pill br-${x.breaker.state}`, text: `${x.breaker.state}${x.breaker.failures ? ` (${x.breaker.failures})` : ''}` })),
      h('td', { text: x.paused ? 'paused' : 'running', testid: 'queue-state' }),
      h('td', { class: 'actions' }, isMaster() ? h('button', {
        type: 'button', class: 'ghost', testid: x.paused ? 'queue-resume' : 'queue-pause', text: x.paused ? 'Resume' : 'Pause',
        onclick: async () => {
          try { await api('POST', `/queues/${enc(x.name)}/${x.paused ? 'resume' : 'pause'}`); loadQueues(); } catch (e) { toast(errText(e), 'bad'); }
        },
      }) : null))))) : h('p', { class: 'muted', testid: 'queues-table', text: 'No queues yet.' }));
  $('schedules-wrap').replaceChildren(s.schedules.length ? h('table', { class: 'grid', testid: 'schedules-table' },
    h('thead', null, h('tr', null, ['Name', 'Target', 'Cron (UTC)', 'Kind', 'Next run', 'Last task', 'By', ''].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, s.schedules.map((x) => h('tr', { testid: 'schedule-row', dataset: { name: x.name } },
      h('td', { text: x.name }), h('td', { text: x.target }), h('td', { class: 'mono', text: x.cron }), h('td', { text: x.kind }),
      h('td', { text: fmtTime(x.next_run_at) }),
      h('td', null, x.last_task_id ? h('a', { href: `#/tasks/${enc(x.last_task_id)}`, class: 'mono', text: x.last_task_id }) : '—'),
      h('td', { text: x.created_by }),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'ghost danger', testid: 'schedule-delete', text: 'Delete', 'aria-label': `Delete schedule ${x.name}`,
        onclick: async () => {
          if (!window.confirm(`Delete schedule ${x.name}?`)) return;
          try { await api('DELETE', `/schedules/${enc(x.schedule_id)}`); loadQueues(); } catch (e) { toast(errText(e), 'bad'); }
        },
      }))))))
    : h('p', { class: 'muted', testid: 'schedules-table', text: 'No schedules.' }));
  $('dead-wrap').replaceChildren(taskTable(d.tasks.slice().reverse(), 'dead-table'));
}

// ---------- audit ----------
function renderAuditView() {
  if (!isStaff()) { forbiddenView('Audit log'); return; }
  const type = h('input', { id: 'audit-type', type: 'text', placeholder: 'e.g. task, defender, policy', testid: 'audit-type' });
  const actor = h('input', { id: 'audit-actor', type: 'text', placeholder: 'agent id', testid: 'audit-actor' });
  const follow = h('input', { id: 'audit-follow', type: 'checkbox', testid: 'audit-follow' });
  const form = h('form', { class: 'inline-form', testid: 'audit-filter' },
    h('label', { for: 'audit-type', text: 'Type' }), type,
    h('label', { for: 'audit-actor', text: 'Actor' }), actor,
    h('button', { type: 'submit', class: 'ghost', text: 'Apply' }),
    h('label', { class: 'check' }, follow, ' follow live'));
  const body = h('tbody');
  const table = h('table', { class: 'grid audit', testid: 'audit-table' },
    h('thead', null, h('tr', null, ['#', 'Time', 'Type', 'Action', 'Actor', 'Target', 'Reason', 'Details'].map((t) => h('th', { scope: 'col', text: t })))), body);
  $('view').append(h('section', { class: 'panel' }, h('h1', { text: 'Audit log' }), form, table));
  let lastId = 0;
  let gen = 0;
  let loaded = false;
  const q = () => {
    const p = new URLSearchParams();
    if (type.value.trim()) p.set('type', type.value.trim());
    if (actor.value.trim()) p.set('actor', actor.value.trim());
    return p;
  };
  const row = (e) => h('tr', { testid: 'audit-row', dataset: { id: String(e.id), type: e.type } },
    h('td', { class: 'num', text: e.id }), h('td', { text: fmtTime(e.ts) }), h('td', { text: e.type }),
    h('td', { text: e.action }), h('td', { text: e.actor }), h('td', { text: e.target || '—' }),
    h('td', { text: e.reason || '' }),
    h('td', null, e.meta && Object.keys(e.meta).length ? h('code', { class: 'small', text: JSON.stringify(e.meta).slice(0, 300) }) : ''));
  const load = async () => {
    const my = ++gen;
    const p = q();
    p.set('limit', '200');
    try {
      const res = await api('GET', `/logs?${p}`);
      if (my !== gen) return;
      body.replaceChildren(...res.entries.slice().reverse().map(row));
      lastId = res.entries.length ? res.entries[res.entries.length - 1].id : 0;
      loaded = true;
    } catch (e) { toast(errText(e), 'bad'); }
  };
  const poll = async () => {
    if (!follow.checked || !loaded || !body.isConnected) return;
    const my = gen;
    const p = q();
    p.set('after_id', String(lastId));
    p.set('limit', '1000');
    try {
      const res = await api('GET', `/logs?${p}`);
      if (my !== gen || !res.entries.length) return;
      lastId = res.entries[res.entries.length - 1].id;
      body.prepend(...res.entries.slice().reverse().map(row));
      while (body.children.length > 1000) body.lastChild.remove();
    } catch { /* next tick */ }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  every(2000, poll);
  load();
}

// ---------- quarantine ----------
async function refreshQuarantineCount() {
  if (!isStaff()) return;
  try {
    const res = await api('GET', '/quarantine?state=held');
    const b = $('q-count');
    b.textContent = res.items.length;
    b.hidden = !res.items.length;
  } catch { /* ignore */ }
}

function renderQuarantineView() {
  if (!isStaff()) { forbiddenView('Quarantine'); return; }
  const stateSel = h('select', { id: 'q-state', testid: 'quarantine-state' }, ['held', 'approved', 'rejected'].map((s) => h('option', { value: s, text: s })));
  const list = h('ol', { class: 'qlist', testid: 'quarantine-list' });
  const form = h('div', { class: 'inline-form' }, h('label', { for: 'q-state', text: 'Show' }), stateSel,
    h('button', { type: 'button', class: 'ghost', text: 'Refresh', onclick: () => load() }));
  $('view').append(h('section', { class: 'panel' }, h('h1', { text: 'Quarantine' }),
    h('p', { class: 'muted', text: 'Messages and tasks the defender held for review. Approving delivers it now, as its sender.' }), form, list));
  const busy = new Set();
  let gen = 0;
  const load = async () => {
    const my = ++gen;
    try {
      const res = await api('GET', `/quarantine?state=${stateSel.value}`);
      if (my !== gen || !list.isConnected) return;
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('[data-qid]');
      const keep = focused && focused.dataset.qid;
      list.replaceChildren(...(res.items.length ? res.items.map(qItem) : [h('li', { class: 'muted', text: `Nothing ${stateSel.value}.` })]));
      if (keep) { const el = list.querySelector(`[data-qid="${CSS.escape(keep)}"] button`); if (el) el.focus(); }
      if (stateSel.value === 'held') { const b = $('q-count'); b.textContent = res.items.length; b.hidden = !res.items.length; }
    } catch (e) { toast(errText(e), 'bad'); }
  };
  const decide = async (it, what) => {
    if (busy.has(it.id)) return;
    busy.add(it.id);
    try {
      const res = await api('POST', `/quarantine/${enc(it.id)}/${what}`, {});
      toast(`${it.id} ${res.item.state}`);
    } catch (e) { toast(errText(e), 'bad'); }
    busy.delete(it.id);
    load();
  };
  const qItem = (it) => {
    const params = (it.item && it.item.params) || {};
    const kind = it.item ? it.item.kind : '?';
    const where = kind === 'chat' ? (params.to_type === 'global' ? 'global' : `${params.to_type} ${params.to_id || ''}`) : `task → ${params.target || '?'}`;
    const text = params.payload && typeof params.payload.text === 'string' ? params.payload.text : JSON.stringify(params.payload || params);
    return h('li', { class: 'qitem', testid: 'quarantine-item', dataset: { qid: it.id, state: it.state } },
      h('div', { class: 'meta' },
        h('strong', { text: `@${handleOf(it.actor)}` }), ` ${kind} to ${where} · ${fmtTime(it.ts)} · `,
        h('span', { class: 'mono small', text: it.id }),
        h('span', { class: `pill q-${it.state}`, text: it.state })),
      h('blockquote', { class: 'qtext', testid: 'quarantine-text', text }),
      h('div', { class: 'muted small', text: `injection ${Number(it.injection_score).toFixed(2)} · command ${Number(it.command_score).toFixed(2)} · ${it.reason || ''}` }),
      h('ul', { class: 'signals', testid: 'quarantine-signals' }, (it.signals || []).map((s) => h('li', null,
        h('code', { text: s.name }), ` ${Number(s.weight).toFixed(2)} `, h('span', { class: 'muted', text: `“${s.evidence}”` })))),
      it.state === 'held' ? h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', testid: 'quarantine-approve', text: 'Approve', onclick: () => decide(it, 'approve') }),
        h('button', { type: 'button', class: 'ghost danger', testid: 'quarantine-reject', text: 'Reject', onclick: () => decide(it, 'reject') }))
        : h('div', { class: 'muted small', text: `decided by ${it.decided_by || '?'} ${it.decided_at ? fmtAgo(it.decided_at) : ''}` }));
  };
  stateSel.addEventListener('change', load);
  load();
  every(4000, load);
}

// ---------- menu (phone width) ----------
function openMenu() {
  document.body.classList.add('menu-open');
  $('menu-toggle').setAttribute('aria-expanded', 'true');
  $('scrim').hidden = false;
  const first = $('sidebar').querySelector('a');
  if (first) first.focus();
}
function closeMenu() {
  if (!document.body.classList.contains('menu-open')) return;
  document.body.classList.remove('menu-open');
  $('menu-toggle').setAttribute('aria-expanded', 'false');
  $('scrim').hidden = true;
}

// ---------- login / logout ----------
async function login(token) {
  S.token = token;
  // Who the token belongs to (and that it is valid) before the socket opens:
  // a refused WebSocket upgrade cannot tell the page why.
  const res = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  if (res.status === 401) throw new Error('The hub does not know this token (or it was revoked).');
  if (!res.ok) throw new Error(`The hub answered ${res.status}.`);
  const me = (await res.json()).agent;
  S.me = { agent_id: me.agent_id, handle: me.handle, role: me.role };
  S.role = me.role;
  applyRole();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('shell').hidden = false;
  wsOpen();
}

function logout(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  WS.closedByUs = true;
  clearTimeout(WS.retryTimer);
  clearInterval(WS.pingTimer);
  if (WS.sock) WS.sock.close();
  if (msg) sessionStorage.setItem('clawnet.msg', msg);
  history.replaceState(null, '', location.pathname);
  location.reload();
}

function showLogin(msg) {
  $('shell').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  $('login-token').focus();
}

function init() {
  const flash = sessionStorage.getItem('clawnet.msg');
  sessionStorage.removeItem('clawnet.msg');
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('login-token').value.trim();
    if (!/^cn_[0-9a-f]{16,}$|^.{32,}$/.test(t)) { $('login-error').textContent = 'Paste a token (cn_ followed by hex digits).'; return; }
    $('login-error').textContent = '';
    try {
      await login(t);
      $('login-token').value = '';
    } catch (e) { $('login-error').textContent = e.message; }
  });
  $('logout').addEventListener('click', () => logout());
  document.querySelector('.skip').addEventListener('click', (ev) => { ev.preventDefault(); $('view').focus(); });
  $('menu-toggle').addEventListener('click', () => (document.body.classList.contains('menu-open') ? closeMenu() : openMenu()));
  $('scrim').addEventListener('click', closeMenu);
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeMenu(); });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && S.route.name === 'chat') {
      const r = S.rooms.get(S.route.arg);
      if (r) { r.unread = 0; r.readTo = Math.max(r.readTo, S.cursors[S.route.arg] || 0); scheduleAck(S.route.arg); renderSidebarSoon(); }
    }
  });
  setInterval(() => { if (S.me && isStaff()) refreshQuarantineCount(); }, 10000);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved).catch((e) => showLogin(e.message));
  else showLogin(flash);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
