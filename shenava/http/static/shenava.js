// Shenava's wallboard and agent desk: the daemon pushes the live figures over
// Server-Sent Events (api/events, once a second); this file only shows them in
// the page's language. Every state-changing request goes through postJSON().
// URLs are relative so the pages work behind a proxy mounted at any path.
// charts.js (the wallboard's charts) and desk-actions.js (the desk's forms)
// use what this file puts in window.Shenava.
"use strict";

(function () {
  const TIMEOUT_MS = 5000;
  const RETRY_MS = 2000;
  const SILENT_MS = 5000; // no event for this long: the connection is lost
  const T = JSON.parse(document.getElementById("strings").textContent);
  const LANG = document.documentElement.lang;
  const LOCALE = LANG === "fa" ? "fa-IR" : "en-GB";
  const DATE_LOCALE = LANG === "fa" ? "fa-IR-u-ca-persian" : "en-GB";
  const $ = (id) => document.getElementById(id);

  // -- texts and numbers in the page's language ----------------------------------

  function t(key, vars) {
    let text = key in T ? T[key] : key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(value);
    }
    return text;
  }

  const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  const percent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });
  const plain = new Intl.NumberFormat(LOCALE, { useGrouping: false });

  const num = (n) => (n === null || n === undefined ? T.none : integer.format(n));
  /** A clock time or other figure the daemon wrote ("06:30"), in the page's digits. */
  const digits = (text) => (LANG === "fa" ? String(text).replace(/[0-9]/g, (d) => "۰۱۲۳۴۵۶۷۸۹"[d])
    : String(text));
  const pct = (x) => (x === null || x === undefined ? T.none : percent.format(x));

  /** A phone number ("+989121234567", "0912***4567") isolated and always left to right: in a
   * right-to-left line "0912***4567" would read "4567***0912" and "+98..." lose its plus to the
   * far end. Explicit, not <bdi>'s "auto": a number has no strong letter, and what "auto" then
   * falls back to is an open question of the HTML standard (whatwg/html#10097). */
  function phone(text) {
    const bdi = document.createElement("bdi");
    bdi.dir = "ltr";
    bdi.className = "phone";
    bdi.textContent = text === null || text === undefined || text === "" ? T.none : String(text);
    return bdi;
  }

  /** A signed figure: only the number and its minus are isolated left to right (U+2066..2069),
   * so "−15" keeps its minus on the left in Persian while the unit, and any further parts,
   * still follow it in the page's direction (read "−۱ دقیقه ۳۰ ثانیه", not "ثانیه ... −۱"). */
  const signed = (negative, n) => (negative ? "\u2066−" + plain.format(n) + "\u2069" : plain.format(n));

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return T.none;
    const s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const parts = h ? [[h, T.unit_h], [m, T.unit_min]]
      : m ? [[m, T.unit_min], [s % 60, T.unit_s]] : [[s, T.unit_s]];
    return parts.map(([n, unit], i) => signed(i === 0 && seconds < 0 && s > 0, n) + "\u00a0" + unit)
      .join(" ");
  }
  const minutes = (m) => (m === null || m === undefined ? T.none
    : signed(m < 0, Math.abs(m)) + "\u00a0" + T.unit_min);

  const formats = new Map();
  function dateFormat(kind, tz) {
    const key = kind + "|" + tz;
    if (!formats.has(key)) {
      const options = kind === "date" ? { dateStyle: "full" } : { timeStyle: "medium" };
      try {
        formats.set(key, new Intl.DateTimeFormat(DATE_LOCALE, { ...options, timeZone: tz }));
      } catch (e) { // an unknown zone: the browser's own
        formats.set(key, new Intl.DateTimeFormat(DATE_LOCALE, options));
      }
    }
    return formats.get(key);
  }
  function dayOf(posix, tz) {
    const date = new Date(posix * 1000);
    const format = dateFormat("date", tz);
    if (LANG !== "fa") return format.format(date);
    // Persian order, "یکشنبه ۱ آذر ۱۴۰۵", whatever pattern this browser's ICU data has.
    const part = Object.fromEntries(format.formatToParts(date).map((p) => [p.type, p.value]));
    return [part.weekday, part.day, part.month, part.year].join(" ");
  }
  const timeOf = (posix, tz) => dateFormat("time", tz).format(new Date(posix * 1000));

  function stateText(state, reason) {
    const name = t("state_" + state);
    return reason ? name + " (" + t("reason_" + reason) + ")" : name;
  }

  // -- talking to the daemon ---------------------------------------------------------

  class Unreachable extends Error {}
  class Refused extends Error {
    constructor(status, code, message, detail) {
      super(message);
      this.status = status;
      this.code = code;
      this.detail = detail || {}; // the whole error object: field, retry_after_min...
    }
  }

  // The session's CSRF token (GET api/session): every change sends it, as JSON, through
  // api() below (postJSON is the pages' one way to change something).
  let csrf = null;

  async function api(method, path, body) {
    const options = {
      method,
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body === undefined ? {} : body);
      if (csrf) options.headers["X-CSRF-Token"] = csrf;
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new Unreachable(String(e));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    const error = data && data.error;
    if (response.ok && data !== null) return data;
    if (!error && (response.ok || response.status >= 502)) {
      // A proxy's "bad gateway", or a cut-off answer: the daemon is not there.
      throw new Unreachable("HTTP " + response.status);
    }
    if (response.status === 401 && document.body.dataset.page !== "sign-in") {
      toSignIn(); // the session ended (expired, signed out elsewhere): sign in again
    }
    // Every API, the register's too, answers {"error": {"code", "message", ...}}.
    const code = error ? error.code : "http." + response.status;
    const message = error ? error.message : response.statusText;
    throw new Refused(response.status, code, message, error || {});
  }

  /** Every request that changes something: a JSON body, and the session's CSRF token. */
  const postJSON = (url, body) => api("POST", url, body === undefined ? {} : body);
  const getJSON = (url) => api("GET", url);

  // -- signing in and out ------------------------------------------------------------

  function toSignIn() {
    const here = new URLSearchParams(location.search);
    const next = document.body.dataset.page + (here.get("agent")
      ? "?agent=" + encodeURIComponent(here.get("agent")) : "");
    location.assign("sign-in?" + new URLSearchParams({ lang: LANG, next }).toString());
  }

  async function session() {
    const me = await api("GET", "api/session");
    csrf = me.csrf;
    window.Shenava.me = me; // {person, role}: the pages offer only what the role may do
    const who = $("who");
    if (who) who.textContent = t("signed_in_as", { person: me.person, role: T["role_" + me.role] || me.role });
    return me;
  }

  function wireSignOut() {
    const button = $("sign-out");
    if (!button) return;
    button.addEventListener("click", async () => {
      try {
        await api("DELETE", "api/session");
      } catch (e) {
        // signed out already, or the daemon is away: the sign-in page says what follows
      }
      csrf = null;
      toSignIn();
    });
  }

  // Only a page of ours, relative: "wallboard", "desk", "review" or "desk?agent=ID".
  function safeNext(next, role) {
    if (next && /^(wallboard|desk|review)(\?agent=[A-Za-z0-9_.@-]{1,64})?$/.test(next)) {
      return next + (next.includes("?") ? "&" : "?") + "lang=" + LANG;
    }
    return (role === "agent" ? "desk" : "wallboard") + "?lang=" + LANG;
  }

  function startSignIn() {
    const form = $("signin-form");
    const error = $("signin-error");
    const next = new URLSearchParams(location.search).get("next");
    if (new URLSearchParams(location.search).get("link") === "used") {
      // a one-use link opened again (api/session/link/... sends us here)
      error.hidden = false;
      error.dataset.code = "link_used";
      error.textContent = T.signin_link_used;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      $("signin-button").disabled = true;
      try {
        const me = await api("POST", "api/session",
          { name: $("signin-name").value.trim(), password: $("signin-password").value });
        location.assign(safeNext(next, me.role));
        return;
      } catch (e) {
        error.hidden = false;
        error.dataset.code = e.code || "";
        if (e.code === "http.bad_credentials") error.textContent = T.signin_wrong;
        else if (e.code === "http.locked_out") {
          // the minutes come as a number (retry_after_min), never read from the English message
          const detail = e.detail || {};
          const minutes = Number.isFinite(detail.retry_after_min) ? detail.retry_after_min
            : Math.max(1, Math.ceil((Number(detail.retry_after_s) || 900) / 60));
          error.textContent = t("signin_locked", { minutes: num(minutes) });
        } else {
          error.textContent = e instanceof Unreachable ? T.status_lost_never
            : t("signin_failed", { message: e.message });
        }
      }
      $("signin-button").disabled = false;
      $("signin-password").value = "";
    });
    // Signed in already (a second tab): straight on.
    api("GET", "api/session").then((me) => location.assign(safeNext(next, me.role)), () => {});
  }

  // -- live or not: never show old figures as if they were live -------------------

  let lastGood = null; // {now, tz} of the last figures shown

  function setStatus(kind, text) {
    const el = $("status");
    el.className = "status " + kind;
    el.dataset.state = kind;
    el.textContent = text;
    document.body.classList.toggle("stale", kind !== "live");
  }

  function shown(now, tz) {
    lastGood = { now, tz };
    setStatus("live", t("status_live", { time: timeOf(now, tz) }));
    $("today").textContent = dayOf(now, tz);
    $("clock").textContent = timeOf(now, tz);
  }

  function failed(error) {
    if (error instanceof Unreachable) {
      setStatus("lost", lastGood ? t("status_lost", { time: timeOf(lastGood.now, lastGood.tz) })
        : T.status_lost_never);
    } else if (error instanceof Refused && error.code === "http.not_signed_in") {
      setStatus("error", T.status_no_role);
    } else if (error instanceof Refused && error.code === "http.sessions_unavailable") {
      setStatus("lost", T.status_sessions_unavailable); // a restart while Redis is away: retried
    } else {
      setStatus("error", t("status_error", { message: error.message || String(error) }));
      if (!(error instanceof Refused)) console.error(error);
    }
  }

  /**
   * Follow api/events: handlers by event name. The browser's EventSource reconnects
   * by itself; a stream that stays silent or fails is "connection lost", and a
   * refused one (no role) is explained by asking api/wallboard once.
   */
  function follow(query, handlers) {
    let source = null;
    let watchdog = null;
    const lost = () => failed(new Unreachable("silent"));
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(lost, SILENT_MS);
    };
    function open() {
      source = new EventSource("api/events" + query);
      source.onopen = alive;
      for (const [name, handler] of Object.entries(handlers)) {
        source.addEventListener(name, (e) => {
          alive();
          try {
            handler(JSON.parse(e.data));
          } catch (error) {
            console.error(error);
          }
        });
      }
      source.onerror = async () => {
        if (source.readyState !== EventSource.CLOSED) {
          lost();
          return;
        }
        // Refused (an HTTP error): ask why, show it, try again later.
        try {
          await getJSON("api/wallboard");
          lost();
        } catch (error) {
          failed(error);
        }
        setTimeout(open, 5000);
      };
    }
    open();
    alive();
  }

  // -- small DOM helpers ----------------------------------------------------------

  function figure(id, value, format) {
    const el = $(id);
    el.textContent = format(value);
    el.dataset.value = JSON.stringify(value === undefined ? null : value);
  }

  function cell(row, text, className, label) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (label) td.dataset.label = label; // the column's name, shown on a phone
    row.appendChild(td);
    return td;
  }

  /** A row's identity across pushes: its data-key, else all its data- attributes. */
  const rowKey = (row) => (row.dataset.key !== undefined ? row.dataset.key : JSON.stringify(row.dataset));
  const plainCell = (cell) => [...cell.childNodes].every((n) => n.nodeType === Node.TEXT_NODE);

  /** Bring a row on the page up to a freshly made one, cell by cell: a cell that did not
   * change is left alone (a screen reader does not hear it again, a focused button keeps
   * its focus), a text cell gets its new text, any other changed cell is swapped. */
  function patchRow(old, fresh) {
    if (old.className !== fresh.className) old.className = fresh.className;
    for (const name of Object.keys(old.dataset)) {
      if (!(name in fresh.dataset)) delete old.dataset[name];
    }
    Object.assign(old.dataset, fresh.dataset);
    const cells = [...fresh.children];
    if (old.children.length !== cells.length) {
      old.replaceChildren(...cells);
      return;
    }
    cells.forEach((cell, i) => {
      const here = old.children[i];
      if (here.isEqualNode(cell)) return;
      if (here.tagName === cell.tagName && plainCell(here) && plainCell(cell)
        && here.attributes.length === cell.attributes.length
        && [...cell.attributes].every((a) => here.getAttribute(a.name) === a.value)) {
        here.textContent = cell.textContent;
        return;
      }
      old.replaceChild(cell, here);
    });
  }

  function fillTable(id, items, makeRow, emptyId) {
    const body = $(id);
    // Rows are updated in place with each push (patchRow); should a focused control's
    // cell be swapped all the same, the focus is given back to the same control.
    const active = document.activeElement;
    const row = active && active !== body && body.contains(active) ? active.closest("tr") : null;
    const place = row ? [rowKey(row), active.tagName, active.className] : null;
    const kept = new Map([...body.children].map((r) => [rowKey(r), r]));
    const wanted = items.map((item) => {
      const fresh = makeRow(item);
      const old = kept.get(rowKey(fresh));
      if (!old) return fresh;
      kept.delete(rowKey(fresh));
      patchRow(old, fresh);
      return old;
    });
    for (const gone of kept.values()) gone.remove();
    wanted.forEach((r, i) => {
      if (body.children[i] !== r) body.insertBefore(r, body.children[i] || null);
    });
    if (place && !body.contains(active)) {
      const again = [...body.children].find((r) => rowKey(r) === place[0]);
      const control = again && [...again.querySelectorAll(place[1])]
        .find((el) => el.className === place[2]);
      if (control) control.focus();
    }
    if (emptyId) $(emptyId).hidden = items.length > 0;
  }

  function notice(text) {
    const el = $("notice");
    el.hidden = !text;
    el.textContent = text || "";
  }

  function journalNotice(journal) {
    // records kept on the daemon's host while Redis is slow or away
    if (!journal || !journal.depth) return "";
    return t("journal_waiting", { n: num(journal.depth), age: duration(journal.oldest_age_s) });
  }

  function parkedNotice(parked) {
    // voicemails whose transcription was given up: kept, waiting for an operator's retry
    return parked ? t("voicemails_parked", { n: num(parked) }) : "";
  }

  function alertValue(kind, value) {
    if (kind === "high_occupancy") return pct(value);
    if (kind === "no_break" || kind === "long_call") return duration(value);
    return num(value);
  }

  const PHONE_FACTS = new Set(["call_caller", "call_callback"]); // screen-pop facts led by a number
  const code = (prefix, value) => (value === null || value === undefined || value === "" ? null
    : (prefix + value) in T ? T[prefix + value] : value);

  // -- the wallboard ----------------------------------------------------------------

  function showFigures(data) {
    const tz = data.site.timezone;
    $("site-name").textContent = T.wallboard_title + " · " + data.site.name;
    notice(data.statistics === "ok"
      ? [journalNotice(data.journal), parkedNotice(data.voicemails_parked)].filter(Boolean).join(" ")
      : T.statistics_not_running);
    const queue = (data.queues || {})[data.queue] || {};
    const rolling = queue.rolling || {};
    const day = queue.day || {};
    const sla = data.sla;
    $("sl-rolling-label").textContent = sla
      ? t("sl_rolling", { minutes: num(sla.window_s / 60) }) : T.sl_today;
    figure("sl-rolling", rolling.sl, pct);
    figure("sl-day", day.sl, pct);
    $("sl-rolling-sub").textContent = rolling.offered ? t("offered", { n: num(rolling.offered) })
      : T.sl_none;
    $("sl-target").textContent = sla
      ? t("sl_target", { target: pct(sla.target), seconds: num(sla.threshold_s) }) : "";
    for (const [tile, sl] of [["tile-sl-rolling", rolling.sl], ["tile-sl-day", day.sl]]) {
      const known = sla && sl !== null && sl !== undefined;
      $(tile).classList.toggle("good", known && sl >= sla.target);
      $(tile).classList.toggle("warn", known && sl < sla.target && sl >= sla.target - 0.1);
      $(tile).classList.toggle("bad", known && sl < sla.target - 0.1);
    }
    figure("waiting", data.waiting.calls, num);
    // On the wall the unit may go under the number: a tile is narrower than "4 min 05 s"
    // at the size a wall needs.
    figure("longest-wait", data.waiting.longest_wait_s, (v) => duration(v).replace(/\u00a0/g, " "));
    const longest = data.waiting.longest_wait_s;
    $("tile-longest-wait").classList.toggle("bad", Boolean(sla) && longest > sla.threshold_s);
    $("tile-longest-wait").classList.toggle("good", Boolean(sla) && longest !== null
      && longest <= sla.threshold_s);
    figure("answered", day.answered, num);
    $("offered").textContent = day.offered !== undefined ? t("offered", { n: num(day.offered) }) : "";
    figure("abandoned", day.abandoned, num);
    $("abandoned-short").textContent = day.abandoned_short
      ? t("abandoned_short", { n: num(day.abandoned_short) }) : "";
    figure("callbacks-open", data.callbacks.open, num);
    $("callbacks-due").textContent = data.callbacks.open === null ? ""
      : t("callbacks_due", { due: num(data.callbacks.due),
        attention: num(data.callbacks.needing_attention) });
    figure("occupancy-now", data.occupancy_now, pct);
  }

  function showLists(data) {
    const tz = data.site.timezone;
    fillTable("break-line", data.break_line, (r) => {
      const row = document.createElement("tr");
      row.dataset.agent = r.agent_id;
      cell(row, num(r.position), "num", T.col_position);
      cell(row, r.name, "", T.col_agent);
      cell(row, t("reason_" + r.reason), "", T.col_reason);
      cell(row, timeOf(r.requested_at, tz), "num", T.col_asked_at);
      cell(row, duration(r.waited_s), "num", T.col_waited);
      return row;
    }, "break-line-empty");
    fillTable("alerts", data.alerts, (a) => {
      const row = document.createElement("tr");
      row.dataset.agent = a.agent_id;
      row.dataset.kind = a.kind;
      row.classList.toggle("seen", Boolean(a.acknowledged));
      cell(row, a.name, "", T.col_agent);
      cell(row, t("alert_" + a.kind), "alert", T.col_kind);
      cell(row, alertValue(a.kind, a.value), "num", T.col_value);
      cell(row, alertValue(a.kind, a.limit), "num", T.col_limit);
      const td = cell(row, "", "", T.col_seen);
      if (a.acknowledged) {
        td.textContent = t("seen_by", { who: a.acknowledged.by });
      } else {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "small ack";
        button.textContent = T.btn_acknowledge;
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            await postJSON("api/wallboard/alerts/acknowledge", { agent_id: a.agent_id, kind: a.kind });
            td.textContent = t("seen_by", { who: "✓" });
          } catch (error) {
            button.disabled = false;
            failed(error);
          }
        });
        td.appendChild(button);
      }
      return row;
    }, "alerts-empty");
    const list = data.callback_list || [];
    fillTable("callback-list", list, (f) => {
      const row = document.createElement("tr");
      row.dataset.flag = f.flag_id;
      cell(row, "", "num", T.col_number).appendChild(phone(f.number));
      cell(row, f.reasons.map((r) => code("callback_reason_", r)).join(LANG === "fa" ? "، " : ", "),
        "", T.col_reason);
      cell(row, f.due_at <= data.now ? T.due_now : timeOf(f.due_at, tz), "num", T.col_due);
      cell(row, num(f.attempts), "num", T.col_attempts);
      return row;
    }, "callback-list-empty");
  }

  // -- the sites: the whole centre's row, then one row per site ------------------------

  function siteCell(row, field, value, text, label, mark) {
    const td = cell(row, text, "num", label);
    td.dataset.field = field;
    td.dataset.value = JSON.stringify(value === undefined ? null : value);
    if (mark) {
      // never colour alone: the words say it too
      td.classList.add("bad");
      const note = document.createElement("span");
      note.className = "mark";
      note.textContent = mark;
      td.append(" ", note);
    }
    return td;
  }

  function siteRow(s, data) {
    const sla = data.sla;
    const tz = data.site.timezone;
    const row = document.createElement("tr");
    row.dataset.key = s.key;
    row.dataset.site = s.id;
    row.className = s.centre ? "centre" : s.reporting ? "site" : "site not-reporting";
    const head = document.createElement("th");
    head.scope = "row";
    head.dataset.label = T.col_site;
    const name = document.createElement("bdi");
    name.className = "site-name";
    name.textContent = s.name;
    head.appendChild(name);
    const notes = [];
    if (s.centre) notes.push(t("centre_reporting", { reporting: num(s.reporting_count), total: num(s.total) }));
    if (s.mine) notes.push(T.this_site);
    if (!s.centre && !s.reporting) {
      notes.push(s.now ? t("site_not_reporting", { time: timeOf(s.now.at, tz) }) : T.site_never_reported);
    }
    if (notes.length) {
      const sub = document.createElement("span");
      sub.className = "sub";
      sub.textContent = notes.join(LANG === "fa" ? "، " : ", ");
      head.append(" ", sub);
    }
    row.appendChild(head);
    const below = (sl) => (sla && sl !== null && sl !== undefined && sl < sla.target ? T.below_target : "");
    const rolling = (s.rolling || {}).sl;
    const day = (s.day || {}).sl;
    siteCell(row, "sl_rolling", rolling, pct(rolling), $("col-sites-sl-rolling").textContent, below(rolling));
    siteCell(row, "sl_day", day, pct(day), T.sl_today, below(day));
    const now = s.reporting ? s.now : null;
    const at = (key) => (now ? now[key] : null);
    siteCell(row, "waiting", at("waiting"), num(at("waiting")), T.waiting);
    const longest = at("longest_wait_s");
    siteCell(row, "longest_wait_s", longest, duration(longest), T.longest_wait,
      sla && longest !== null && longest > sla.threshold_s
        ? t("over_threshold", { seconds: num(sla.threshold_s) }) : "");
    siteCell(row, "ready", at("ready"), num(at("ready")), T.col_agents_ready);
    siteCell(row, "busy", at("busy"), num(at("busy")), T.col_agents_busy);
    siteCell(row, "not_ready", at("not_ready"), num(at("not_ready")), T.col_agents_not_ready);
    siteCell(row, "callbacks_due", at("callbacks_due"), num(at("callbacks_due")), T.col_callbacks_due);
    return row;
  }

  function showSites(data) {
    const centre = data.centre;
    const section = $("sites-section");
    const sites = centre && centre.sites ? centre.sites : [];
    section.hidden = !sites.length;
    if (!sites.length) return;
    const sla = data.sla;
    const header = sla ? t("sl_rolling", { minutes: num(sla.window_s / 60) }) : T.sl_rolling_short;
    if ($("col-sites-sl-rolling").textContent !== header) $("col-sites-sl-rolling").textContent = header;
    const rows = [{
      key: "*centre", id: "*", centre: true, name: T.centre_row, rolling: centre.rolling, day: centre.day,
      now: centre.now, reporting: true, reporting_count: centre.reporting, total: sites.length,
    }, ...sites.map((s) => ({
      ...s, key: "site:" + s.id, name: s.name || s.label, mine: s.id === centre.this_site,
    }))];
    fillTable("sites", rows, (s) => siteRow(s, data));
    if ($("sites-note").textContent !== T.sites_note) $("sites-note").textContent = T.sites_note;
  }

  const rows = new Map(); // agent id -> the pushed row

  function showAgents(now) {
    const sorted = [...rows.values()].sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true }));
    fillTable("agents", sorted, (a) => {
      const row = document.createElement("tr");
      row.dataset.key = a.id;
      row.dataset.agent = a.id;
      row.dataset.state = a.state;
      row.className = "state-" + a.state;
      cell(row, a.name + " (" + a.id + ")", "who", T.col_agent);
      const state = cell(row, stateText(a.state, a.reason), "state", T.col_state);
      state.dataset.state = a.state;
      state.dataset.reason = a.reason || "";
      cell(row, duration(now - a.since), "num", T.col_for);
      cell(row, minutes(a.not_ready_today_min), "num", T.col_not_ready);
      const allowance = a.allowance_min;
      cell(row, minutes(allowance ? allowance.taken : null), "num", T.col_break_used);
      const left = cell(row, minutes(allowance ? allowance.left : null), "num", T.col_break_left);
      left.classList.toggle("bad", Boolean(allowance) && allowance.left < 0);
      cell(row, a.rested_at === null ? T.none : duration(now - a.rested_at), "num", T.col_since_break);
      cell(row, pct(a.occupancy), "num", T.col_occupancy);
      const notes = (a.alerts || []).map((k) => t("alert_" + k));
      if (a.break_position) notes.push(t("in_break_line", { n: num(a.break_position) }));
      if (a.break_after_call) notes.push(T.break_after_call_short);
      cell(row, notes.join(LANG === "fa" ? "، " : ", "), notes.length ? "alert" : "", T.col_alerts);
      return row;
    });
  }

  const boardListeners = [];

  function startWallboard() {
    if (new URLSearchParams(location.search).get("tv") === "1") document.body.classList.add("tv");
    let now = null;
    follow("", {
      board(data) {
        now = data.now;
        showFigures(data);
        showSites(data);
        showLists(data);
        showAgents(now);
        for (const listener of boardListeners) listener("board", data);
        shown(data.now, data.site.timezone);
      },
      agents(data) {
        if (data.full) rows.clear();
        for (const row of data.rows) rows.set(row.id, row);
        showAgents(now === null ? data.now : now);
      },
      series(data) {
        for (const listener of boardListeners) listener("series", data);
      },
    });
  }

  // -- the agent desk ----------------------------------------------------------------

  const deskListeners = [];

  function startDesk() {
    const wanted = new URLSearchParams(location.search).get("agent");
    let agentId = wanted;
    let lastAnswer = null; // the break request's answer, as the daemon gave it
    let callShown; // the call id of the screen pop shown (undefined: none asked yet)
    let site = null;
    const agentPath = (action) => "api/agents/" + encodeURIComponent(agentId) + action;

    function showState(agent, now) {
      $("agent-name").textContent = agent.name + " (" + agent.id + ")";
      const el = $("my-state");
      el.textContent = stateText(agent.state, agent.reason);
      el.dataset.state = agent.state;
      el.dataset.reason = agent.reason || "";
      $("my-state-for").textContent = t("for_time", { time: duration(now - agent.since) });
      const out = agent.state === "logged_out";
      $("btn-login").disabled = !out;
      for (const id of ["btn-ready", "btn-not-ready", "btn-break", "btn-logout"]) {
        $(id).disabled = out;
      }
    }

    function showBreak(row, agent) {
      let status = lastAnswer ? lastAnswer.status : null;
      let position = lastAnswer ? lastAnswer.position : null;
      if (row && row.break_position) {
        status = "waiting";
        position = row.break_position;
      } else if (row && row.break_after_call) {
        status = "after_call";
      } else if ((status === "waiting" || status === "after_call") && agent
        && agent.state === "not_ready" && ["break", "lunch"].includes(agent.reason)) {
        status = "granted"; // the line let the agent go
        lastAnswer = { ...lastAnswer, status: "granted" };
      }
      const el = $("break-answer");
      el.dataset.status = status || "";
      el.textContent = status === "granted" ? T.break_granted
        : status === "after_call" ? T.break_after_call
          : status === "waiting" ? (position ? t("break_waiting", { n: num(position) })
            : T.break_waiting_no_place)
            : T.none;
    }

    function showCall(call) {
      $("no-call").hidden = Boolean(call);
      $("call").hidden = !call;
      for (const listener of deskListeners) listener(call, agentId);
      if (!call) return;
      const flags = [];
      if (call.urgent) flags.push(T.flag_urgent);
      if (call.vulnerable) flags.push(T.flag_vulnerable);
      if (call.hard) flags.push(T.flag_hard);
      if (call.abusive_caller || (call.abuse_reports || []).length) flags.push(T.flag_abusive);
      if (call.repeat_complainant) flags.push(T.flag_repeat);
      if (call.open_complaint) flags.push(T.flag_open_complaint);
      $("call-flags").replaceChildren(...flags.map((text) => {
        const li = document.createElement("li");
        li.textContent = text;
        return li;
      }));
      const complaint = call.complaint
        ? call.complaint.reference + " (" + code("status_", call.complaint.status) + ")" : null;
      const facts = [
        ["call_category", code("category_", call.category)],
        ["call_language", call.language ? t("lang_" + call.language) : null],
        ["call_urgency", code("urgency_", call.urgency)],
        ["call_care", code("care_", call.care)],
        ["call_account", call.account],
        ["call_reference", call.reference],
        ["call_caller", call.kind === "callback" ? null : call.caller_number],
        ["call_callback", call.kind === "callback" ? callbackLine(call) : null],
        ["call_waited", call.waited_s === undefined || call.waited_s === null ? null
          : duration(call.waited_s)],
        ["call_complaint", complaint],
        ["call_earlier", (call.earlier_complaints || []).map((c) => {
          const about = [c.category ? code("category_", c.category) : null,
            c.status ? code("status_", c.status) : null].filter(Boolean);
          return c.reference + (about.length ? " (" + about.join(LANG === "fa" ? "، " : ", ") + ")" : "");
        }).join(LANG === "fa" ? "؛ " : "; ") || null],
      ].filter(([, value]) => value !== null && value !== undefined && value !== "");
      $("call-facts").replaceChildren(...facts.flatMap(([key, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = T[key];
        const dd = document.createElement("dd");
        // Each part isolated (a Latin value in a Persian line); a phone number left to right,
        // or "0912***4567" shows as "4567***0912" in a right-to-left line.
        const parts = Array.isArray(value) ? value : [value];
        parts.forEach((part, i) => {
          if (i) dd.appendChild(document.createTextNode(" "));
          if (PHONE_FACTS.has(key) && i === 0) {
            dd.appendChild(phone(part));
            return;
          }
          const text = document.createElement("bdi");
          text.textContent = part;
          dd.appendChild(text);
        });
        dd.dataset.field = key;
        return [dt, dd];
      }));
      $("call-transcript").textContent = call.transcript || T.none;
    }

    /** A callback being dialled: whom (masked as every number here), why, which attempt. */
    function callbackLine(call) {
      const cb = call.callback || {};
      const sep = LANG === "fa" ? "، " : ", ";
      const reasons = (cb.reasons || []).map((r) => code("callback_reason_", r)).join(sep);
      const why = reasons && cb.attempt ? t("call_callback_why", { reasons, attempt: num(cb.attempt) })
        : reasons;
      const parts = [call.caller_number || T.none, why ? "(" + why + ")" : null].filter(Boolean);
      return parts;
    }

    async function loadCall() {
      const mine = await getJSON(agentPath("/call"));
      callShown = mine.call ? mine.call.call_id : null;
      $("call-title").textContent = T.current_call;
      showCall(mine.call);
    }

    function showMe(data) {
      const row = data.agent;
      if (!row) return;
      showState(row, data.now);
      showBreak(row, row);
      const allowance = row.allowance || null;
      figure("break-earned", allowance ? allowance.earned_s : null, duration);
      figure("break-taken", allowance ? allowance.taken_s : null, duration);
      figure("break-left", allowance ? allowance.left_s : null, duration);
      figure("break-exempt", allowance ? allowance.exempt_s : null, duration);
      figure("since-break", row.since_break_s, duration);
      $("break-left").classList.toggle("bad", Boolean(allowance) && allowance.left_s < 0);
      const place = (data.break_line || [])[0];
      $("break-place").textContent = place ? t("break_place_by", {
        n: num(place.position), time: timeOf(place.latest_at, site ? site.timezone : undefined),
      }) : T.none;
      $("break-place").dataset.value = JSON.stringify(place ? place.position : null);
      // The screen pop is read when the call changes, not every second.
      // After a call its screen pop stays (the desk's actions are for "after" too)
      // until the next call comes.
      const current = row.current_call || null;
      if (current !== callShown && (current !== null || callShown === undefined)) {
        callShown = current;
        loadCall().catch(failed);
      } else if (current === null && callShown) {
        callShown = null;
        $("call-title").textContent = T.last_call;
      }
      if (site) shown(data.now, site.timezone);
    }

    async function begin() {
      if (!agentId) {
        const board = await getJSON("api/wallboard");
        if (board.you.role === "agent") agentId = board.you.id;
        if (!agentId) {
          notice(T.desk_agent_missing);
          shown(board.now, board.site.timezone);
          return;
        }
      }
      follow("?agent=" + encodeURIComponent(agentId), {
        queue(data) {
          site = data.site;
          notice(data.statistics === "ok" ? "" : T.statistics_not_running);
          figure("waiting", data.waiting.calls, num);
          figure("longest-wait", data.waiting.longest_wait_s, duration);
        },
        me: showMe,
      });
    }
    begin().catch(failed);

    async function act(action, body) {
      const error = $("action-error");
      error.hidden = true;
      if (!agentId) return;
      try {
        const answer = await postJSON(agentPath(action), body);
        if (answer.break) lastAnswer = answer.break;
        else if (action !== "/break") lastAnswer = null;
        showState(answer.agent, answer.now);
        if (answer.break) showBreak(null, answer.agent);
      } catch (e) {
        error.hidden = false;
        error.textContent = e instanceof Unreachable ? T.status_lost_never
          : t("status_error", { message: e.message });
        error.dataset.code = e.code || "";
      }
    }

    $("btn-login").addEventListener("click", () => act("/login"));
    $("btn-logout").addEventListener("click", () => act("/logout"));
    $("btn-ready").addEventListener("click", () => act("/ready"));
    $("btn-not-ready").addEventListener("click",
      () => act("/not-ready", { reason: $("not-ready-reason").value }));
    $("btn-break").addEventListener("click",
      () => act("/break", { reason: $("break-reason").value }));
  }

  const readyListeners = [];

  async function start(page) {
    try {
      await session();
    } catch (error) {
      if (!(error instanceof Refused && error.status === 401)) {
        failed(error);
        setTimeout(() => start(page), RETRY_MS); // the daemon is away: try again
      }
      return; // a 401 is on its way to the sign-in page
    }
    page();
  }

  window.Shenava = {
    T, LANG, LOCALE, t, num, digits, pct, duration, minutes, timeOf, code, phone, postJSON, getJSON,
    shown, failed, follow, Refused, Unreachable,
    onBoard: (f) => boardListeners.push(f),
    onCall: (f) => deskListeners.push(f),
    onReady: (f) => readyListeners.push(f), // the session is there (its CSRF token too)
  };
  // After every deferred script (charts.js, desk-actions.js, supervisor.js) has run.
  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    wireSignOut();
    if (page === "wallboard") start(startWallboard);
    else if (page === "desk") start(startDesk);
    else if (page === "review") start(() => readyListeners.forEach((f) => f()));
    else if (page === "sign-in") startSignIn();
  });
})();
