// Shenava's wallboard and agent desk: poll the daemon's JSON API and show it.
// No build step, no library. Every figure comes from the daemon (api/wallboard,
// api/agents/{id}/call); this file only formats it in the page's language.
// URLs are relative so the pages work behind a proxy mounted at any path.
"use strict";

(function () {
  const POLL_MS = 2000;
  const TIMEOUT_MS = 5000;
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
  const twoDigits = new Intl.NumberFormat(LOCALE, { minimumIntegerDigits: 2, useGrouping: false });

  const num = (n) => (n === null || n === undefined ? T.none : integer.format(n));
  const pct = (x) => (x === null || x === undefined ? T.none : percent.format(x));

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return T.none;
    // A negative figure (an allowance overdrawn) keeps its minus on the left in Persian too.
    const sign = seconds < 0 ? "\u2066−" : "";
    const s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = twoDigits.format(s % 60);
    return sign + (h ? plain.format(h) + ":" + twoDigits.format(m) + ":" + rest
      : plain.format(m) + ":" + rest) + (sign ? "\u2069" : "");
  }

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
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // The session's CSRF token (GET api/session): every change sends it, as JSON.
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
    throw new Refused(response.status, error ? error.code : "http." + response.status,
      error ? error.message : response.statusText);
  }

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
    const who = $("who");
    if (who) who.textContent = t("signed_in_as", { person: me.person, role: me.role });
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

  // Only a page of ours, relative: "wallboard", "desk" or "desk?agent=ID".
  function safeNext(next, role) {
    if (next && /^(wallboard|desk)(\?agent=[A-Za-z0-9_.@-]{1,64})?$/.test(next)) {
      return next + (next.includes("?") ? "&" : "?") + "lang=" + LANG;
    }
    return (role === "agent" ? "desk" : "wallboard") + "?lang=" + LANG;
  }

  function startSignIn() {
    const form = $("signin-form");
    const error = $("signin-error");
    const next = new URLSearchParams(location.search).get("next");
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
          const seconds = Number((/(\d+) minute/.exec(e.message) || [0, 15])[1]) * 60;
          error.textContent = t("signin_locked", { minutes: num(Math.ceil(seconds / 60)) });
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

  let lastGood = null; // {now, tz} of the last answer shown

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
    } else {
      setStatus("error", t("status_error", { message: error.message || String(error) }));
      if (!(error instanceof Refused)) console.error(error);
    }
  }

  function poll(refresh) {
    let timer = null;
    const tick = async () => {
      clearTimeout(timer);
      try {
        await refresh();
      } catch (error) {
        failed(error);
      } finally {
        timer = setTimeout(tick, POLL_MS);
      }
    };
    tick();
    return tick; // call to refresh at once (after an action)
  }

  // -- small DOM helpers ----------------------------------------------------------

  function figure(id, value, format) {
    const el = $(id);
    el.textContent = format(value);
    el.dataset.value = JSON.stringify(value === undefined ? null : value);
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, items, makeRow, emptyId) {
    const body = $(id);
    body.replaceChildren(...items.map(makeRow));
    if (emptyId) $(emptyId).hidden = items.length > 0;
  }

  function notice(text) {
    const el = $("notice");
    el.hidden = !text;
    el.textContent = text || "";
  }

  function alertValue(kind, value) {
    if (kind === "high_occupancy") return pct(value);
    if (kind === "no_break" || kind === "long_call") return duration(value);
    return num(value);
  }

  // -- the wallboard ----------------------------------------------------------------

  function showWallboard(data) {
    const tz = data.site.timezone;
    $("site-name").textContent = T.wallboard_title + " · " + data.site.name;
    notice(data.statistics === "ok" ? "" : T.statistics_not_running);
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
      $(tile).classList.toggle("bad", known && sl < sla.target);
    }
    figure("waiting", data.waiting.calls, num);
    figure("longest-wait", data.waiting.longest_wait_s, duration);
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

    fillTable("agents", data.agents, (a) => {
      const row = document.createElement("tr");
      row.dataset.agent = a.id;
      row.dataset.state = a.state;
      row.className = "state-" + a.state;
      cell(row, a.name + " (" + a.id + ")");
      const state = cell(row, stateText(a.state, a.reason), "state");
      state.dataset.state = a.state;
      state.dataset.reason = a.reason || "";
      cell(row, duration(data.now - a.since), "num");
      cell(row, duration(a.not_ready_today_s), "num");
      cell(row, duration(a.allowance ? a.allowance.taken_s : null), "num");
      const left = cell(row, duration(a.allowance ? a.allowance.left_s : null), "num");
      left.classList.toggle("bad", Boolean(a.allowance) && a.allowance.left_s < 0);
      cell(row, duration(a.since_break_s), "num");
      cell(row, pct(a.occupancy), "num");
      const notes = (a.alerts || []).map((k) => t("alert_" + k));
      if (a.break_position) notes.push(t("in_break_line", { n: num(a.break_position) }));
      if (a.break_after_call) notes.push(T.break_after_call_short);
      cell(row, notes.join(LANG === "fa" ? "، " : ", "), notes.length ? "alert" : "");
      return row;
    });
    fillTable("break-line", data.break_line, (r) => {
      const row = document.createElement("tr");
      row.dataset.agent = r.agent_id;
      cell(row, num(r.position), "num");
      cell(row, r.name);
      cell(row, t("reason_" + r.reason));
      cell(row, timeOf(r.requested_at, tz), "num");
      cell(row, duration(r.waited_s), "num");
      return row;
    }, "break-line-empty");
    fillTable("alerts", data.alerts, (a) => {
      const row = document.createElement("tr");
      row.dataset.agent = a.agent_id;
      cell(row, a.name);
      cell(row, t("alert_" + a.kind), "alert");
      cell(row, alertValue(a.kind, a.value), "num");
      cell(row, alertValue(a.kind, a.limit), "num");
      return row;
    }, "alerts-empty");
    shown(data.now, tz);
  }

  function startWallboard() {
    poll(async () => showWallboard(await api("GET", "api/wallboard")));
  }

  // -- the agent desk ----------------------------------------------------------------

  function startDesk() {
    const wanted = new URLSearchParams(location.search).get("agent");
    let agentId = wanted;
    let lastAnswer = null; // the break request's answer, as the daemon gave it
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
        ? call.complaint.reference + " (" + call.complaint.status + ")" : null;
      const facts = [
        ["call_category", call.category],
        ["call_language", call.language ? t("lang_" + call.language) : null],
        ["call_urgency", call.urgency],
        ["call_care", call.care],
        ["call_account", call.account],
        ["call_reference", call.reference],
        ["call_caller", call.caller_number],
        ["call_waited", call.waited_s === undefined ? null : duration(call.waited_s)],
        ["call_complaint", complaint],
        ["call_earlier", (call.earlier_complaints || []).map((c) => c.reference).join(", ") || null],
      ].filter(([, value]) => value !== null && value !== undefined && value !== "");
      $("call-facts").replaceChildren(...facts.flatMap(([key, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = T[key];
        const dd = document.createElement("dd");
        const text = document.createElement("bdi"); // a Latin value in a Persian line
        text.textContent = value;
        dd.appendChild(text);
        dd.dataset.field = key;
        return [dt, dd];
      }));
      $("call-transcript").textContent = call.transcript || T.none;
    }

    async function refresh() {
      const board = await api("GET", "api/wallboard");
      if (!agentId && board.you.role === "agent") agentId = board.you.id;
      if (!agentId) {
        notice(T.desk_agent_missing);
        shown(board.now, board.site.timezone);
        return;
      }
      const mine = await api("GET", agentPath("/call"));
      notice(board.statistics === "ok" ? "" : T.statistics_not_running);
      const row = board.agents.find((a) => a.id === agentId) || null;
      showState(mine.agent, mine.now);
      showBreak(row, mine.agent);
      const allowance = row ? row.allowance : null;
      figure("break-earned", allowance ? allowance.earned_s : null, duration);
      figure("break-taken", allowance ? allowance.taken_s : null, duration);
      figure("break-left", allowance ? allowance.left_s : null, duration);
      figure("break-exempt", allowance ? allowance.exempt_s : null, duration);
      figure("since-break", row ? row.since_break_s : null, duration);
      figure("waiting", board.waiting.calls, num);
      figure("longest-wait", board.waiting.longest_wait_s, duration);
      showCall(mine.call);
      shown(mine.now, board.site.timezone);
    }

    const refreshNow = poll(refresh);

    async function act(action, body) {
      const error = $("action-error");
      error.hidden = true;
      if (!agentId) return;
      try {
        const answer = await api("POST", agentPath(action), body);
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
      refreshNow();
    }

    $("btn-login").addEventListener("click", () => act("/login"));
    $("btn-logout").addEventListener("click", () => act("/logout"));
    $("btn-ready").addEventListener("click", () => act("/ready"));
    $("btn-not-ready").addEventListener("click",
      () => act("/not-ready", { reason: $("not-ready-reason").value }));
    $("btn-break").addEventListener("click",
      () => act("/break", { reason: $("break-reason").value }));
  }

  async function start(page) {
    try {
      await session();
    } catch (error) {
      if (!(error instanceof Refused && error.status === 401)) {
        failed(error);
        setTimeout(() => start(page), POLL_MS); // the daemon is away: try again
      }
      return; // a 401 is on its way to the sign-in page
    }
    page();
  }

  const page = document.body.dataset.page;
  wireSignOut();
  if (page === "wallboard") start(startWallboard);
  else if (page === "desk") start(startDesk);
  else if (page === "sign-in") startSignIn();
})();
