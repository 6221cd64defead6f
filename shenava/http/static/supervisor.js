// The supervisor's review page (/review): abuse reports to accept or reject, the
// complaint register (search, detail), the callback backlog, the day's report by
// 15-minute interval with its CSV. Reads the register's API; every change goes
// through Shenava.postJSON. The lists are read again when the daemon's pushed
// stamps say they changed (api/events?view=review), never on a timer.
"use strict";

(function () {
  const S = window.Shenava;
  if (!S || document.body.dataset.page !== "review") return;
  const { T, t, num, pct, code } = S;
  const $ = (id) => document.getElementById(id);
  const list = (values) => values.join(S.LANG === "fa" ? "، " : ", ");
  let tz;
  let shownRef = null; // the complaint whose detail is open

  /** A section's list, or what refused it (a role that may not, e.g. an agent's abuse review). */
  async function section(id, load) {
    const note = $(id + "-refused");
    try {
      await load();
      if (note) note.hidden = true;
    } catch (error) {
      if (!(error instanceof S.Refused) || error.status !== 403 || !note) throw error;
      note.hidden = false;
      note.textContent = t("section_not_allowed", { message: error.message });
    }
  }

  function when(posix) {
    if (posix === null || posix === undefined) return T.none;
    return new Intl.DateTimeFormat(S.LANG === "fa" ? "fa-IR-u-ca-persian" : "en-GB",
      { dateStyle: "short", timeStyle: "short", timeZone: tz }).format(new Date(posix * 1000));
  }

  function cell(row, text, label, className) {
    const td = document.createElement("td");
    const bdi = document.createElement("bdi");
    bdi.textContent = text === null || text === undefined || text === "" ? T.none : String(text);
    td.appendChild(bdi);
    fillCell(td, row, label, className);
    return td;
  }

  /** A phone number's cell: left to right in Persian too (Shenava.phone). */
  function phoneCell(row, number, label) {
    const td = document.createElement("td");
    td.appendChild(S.phone(number));
    fillCell(td, row, label, "num");
    return td;
  }

  function fillCell(td, row, label, className) {
    td.dataset.label = label;
    if (className) td.className = className;
    row.appendChild(td);
  }

  function fill(id, items, make, emptyId) {
    $(id).replaceChildren(...items.map(make));
    $(emptyId).hidden = items.length > 0;
  }

  // -- abuse reports -------------------------------------------------------------------

  async function loadAbuse() {
    const reports = await S.getJSON("api/complaints/abuse");
    // Rows already on the page stay as they are (a note being typed, a review's answer);
    // new reports are added, those reviewed elsewhere go.
    const kept = new Map([...$("abuse-list").children].map((row) => [row.dataset.report, row]));
    const pending = new Set(reports.map((r) => r.report_id));
    const rows = reports.map((r) => kept.get(r.report_id) || abuseRow(r));
    for (const [id, row] of kept) if (!pending.has(id) && row.dataset.status) rows.push(row);
    $("abuse-list").replaceChildren(...rows);
    $("abuse-empty").hidden = rows.length > 0;
  }

  function abuseRow(r) {
    const row = document.createElement("tr");
    row.dataset.report = r.report_id;
    cell(row, r.report_id, T.col_report);
    cell(row, r.agent_id, T.col_agent);
    cell(row, code("abuse_", r.category), T.abuse_category);
    cell(row, r.note, T.note);
    cell(row, when(r.reported_at), T.col_when, "num");
    const td = document.createElement("td");
    td.dataset.label = T.col_review;
    const note = document.createElement("input");
    note.type = "text";
    note.dir = "auto"; // a note in English reads left to right on the Persian page too
    note.className = "review-note";
    note.setAttribute("aria-label", T.review_note);
    note.placeholder = T.review_note;
    const accept = document.createElement("button");
    accept.type = "button";
    accept.className = "small accept";
    accept.textContent = T.btn_accept;
    const reject = document.createElement("button");
    reject.type = "button";
    reject.className = "small danger reject";
    reject.textContent = T.btn_reject;
    const review = async (upheld) => {
      accept.disabled = reject.disabled = true;
      try {
        const answer = await S.postJSON("api/complaints/abuse/" + encodeURIComponent(r.report_id)
          + "/review", { upheld, note: note.value });
        td.replaceChildren(document.createTextNode(code("report_status_", answer.status)));
        row.dataset.status = answer.status;
      } catch (error) {
        accept.disabled = reject.disabled = false;
        td.appendChild(document.createTextNode(" " + t("status_error", { message: error.message })));
      }
    };
    accept.addEventListener("click", () => review(true));
    reject.addEventListener("click", () => review(false));
    td.append(note, accept, reject);
    row.appendChild(td);
    return row;
  }

  // -- the register --------------------------------------------------------------------

  async function search() {
    const query = new URLSearchParams({ limit: "50" });
    const q = $("search-q").value.trim();
    if (q) query.set("q", q);
    if ($("search-number").value.trim()) query.set("number", $("search-number").value.trim());
    if ($("search-category").value.trim()) query.set("category", $("search-category").value.trim());
    if ($("search-status").value) query.set("status", $("search-status").value);
    if ($("search-since").value) query.set("since", String(new Date($("search-since").value).getTime() / 1000));
    let found = await S.getJSON("api/complaints/?" + query);
    if (!found.length && q) {
      // a reference is looked up as it is
      try {
        found = [await S.getJSON("api/complaints/" + encodeURIComponent(q))];
      } catch (e) {
        found = [];
      }
    }
    fill("register-list", found, (c) => {
      const row = document.createElement("tr");
      row.dataset.reference = c.reference;
      const ref = document.createElement("td");
      ref.dataset.label = T.call_reference;
      const link = document.createElement("button");
      link.type = "button";
      link.className = "link";
      link.textContent = c.reference;
      link.addEventListener("click", () => detail(c.reference).catch(S.failed));
      ref.appendChild(link);
      row.appendChild(ref);
      cell(row, code("status_", c.status), T.complaint_status);
      cell(row, code("category_", c.category), T.call_category);
      phoneCell(row, c.number, T.col_number);
      cell(row, when(c.opened_at), T.col_when, "num");
      return row;
    }, "register-empty");
  }

  async function detail(reference) {
    const c = await S.getJSON("api/complaints/" + encodeURIComponent(reference));
    shownRef = c.reference;
    $("complaint-detail").hidden = false;
    $("complaint-detail").dataset.reference = c.reference;
    $("complaint-detail").dataset.status = c.status;
    $("detail-ref").textContent = c.reference;
    const facts = [
      [T.complaint_status, code("status_", c.status)],
      [T.call_category, code("category_", c.category)],
      [T.detail_channel, code("channel_", c.channel)],
      [T.col_number, c.number],
      [T.call_language, c.language ? t("lang_" + c.language) : null],
      [T.call_account, c.account],
      [T.detail_opened, when(c.opened_at)],
      [T.detail_redress, c.redress ? c.redress.description : null],
      [T.detail_notes, c.notes.length ? list(c.notes.map((n) => n.text + " (" + n.by + ")")) : null],
    ].filter(([, v]) => v);
    $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.appendChild(k === T.col_number ? S.phone(v)
        : Object.assign(document.createElement("bdi"), { textContent: v }));
      return [dt, dd];
    }));
    $("detail-history").replaceChildren(...c.history.map((h) => {
      const li = document.createElement("li");
      li.dataset.action = h.action;
      let what = code("history_", h.action);
      if (h.action === "status" && h.detail && h.detail.to) what += ": " + code("status_", h.detail.to);
      li.textContent = when(h.at) + " · " + h.by + " · " + what;
      return li;
    }));
    $("detail-transcript").textContent = c.transcript || T.none;
    // Recordings: the register's download URLs (it checks the role when one is played);
    // a role that may not listen is told so, with no player that would only be refused.
    const recordings = c.recordings || [];
    const mayListen = !S.me || S.me.role !== "agent";
    $("detail-recordings-refused").hidden = mayListen || !recordings.length;
    $("detail-recordings-refused").textContent = t("recordings_not_allowed", { n: num(recordings.length) });
    $("detail-recordings").replaceChildren(...(mayListen ? recordings : []).map((url, n) => {
      const li = document.createElement("li");
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = url;
      audio.setAttribute("aria-label", t("recording_n", { n: num(n + 1) }));
      li.appendChild(audio);
      return li;
    }));
    $("detail-recordings-empty").hidden = recordings.length > 0;
  }

  // -- callbacks -----------------------------------------------------------------------

  async function loadCallbacks() {
    const flags = await S.getJSON("api/complaints/callbacks?state=" + $("callback-state").value);
    // Rows being acted on stay as they are (a reason being typed, the daemon's answer).
    const kept = new Map([...$("callbacks-list").children]
      .filter((row) => row.dataset.done || (row.querySelector(".callback-note") || {}).value)
      .map((row) => [row.dataset.flag, row]));
    const listed = new Set(flags.map((f) => f.flag_id));
    const rows = flags.map((f) => kept.get(f.flag_id) || callbackRow(f));
    for (const [id, row] of kept) if (!listed.has(id) && row.dataset.done) rows.push(row);
    $("callbacks-list").replaceChildren(...rows);
    $("callbacks-empty").hidden = rows.length > 0;
  }

  function flagState(f) {
    if (f.acknowledged_by) return t("callback_seen_by", { who: f.acknowledged_by });
    return f.resolution ? code("resolution_", f.resolution) : code("flag_state_", f.status);
  }

  function callbackRow(f) {
    const row = document.createElement("tr");
    row.dataset.flag = f.flag_id;
    phoneCell(row, f.number, T.col_number);
    cell(row, list([...new Set(f.reasons.map((r) => code("callback_reason_", r.kind)))]), T.col_reason);
    cell(row, when(f.due_at), T.col_due, "num");
    cell(row, num(f.attempts.length), T.col_attempts, "num");
    const state = cell(row, flagState(f), T.col_state, "state");
    const td = document.createElement("td");
    td.dataset.label = T.col_action;
    row.appendChild(td);
    // Supervisors (and admins) act on the backlog; the daemon checks the role again.
    if (S.me && S.me.role === "agent") return row;
    const result = document.createElement("span");
    result.className = "callback-result";
    result.setAttribute("role", "status");
    const act = async (button, path, body) => {
      for (const b of td.querySelectorAll("button")) b.disabled = true;
      try {
        const flag = await S.postJSON("api/complaints/callbacks/" + encodeURIComponent(f.flag_id)
          + "/" + path, body);
        state.firstChild.textContent = flagState(flag);
        row.dataset.done = path;
        td.replaceChildren(result);
        result.textContent = path === "cancel" ? T.callback_cancelled : T.callback_acknowledged;
      } catch (error) {
        for (const b of td.querySelectorAll("button")) b.disabled = false;
        result.textContent = t("status_error", { message: error.message });
        td.appendChild(result);
        button.focus();
      }
    };
    if (f.status === "open") {
      const note = document.createElement("input");
      note.type = "text";
      note.dir = "auto";
      note.className = "callback-note";
      note.setAttribute("aria-label", t("callback_cancel_reason_for", { number: f.number }));
      note.placeholder = T.callback_cancel_reason;
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "small danger callback-cancel";
      cancel.textContent = T.btn_cancel_callback;
      cancel.addEventListener("click", () => {
        if (!note.value.trim()) {
          result.textContent = T.callback_reason_needed;
          td.appendChild(result);
          note.focus();
          return;
        }
        act(cancel, "cancel", { note: note.value.trim() });
      });
      note.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          cancel.click();
        }
      });
      td.append(note, cancel);
    }
    if (f.resolution && !f.acknowledged_by && (f.resolution === "unreachable" || f.resolution === "wrong_number")) {
      const ack = document.createElement("button");
      ack.type = "button";
      ack.className = "small callback-ack";
      ack.textContent = T.btn_acknowledge;
      ack.addEventListener("click", () => act(ack, "acknowledge", {}));
      td.appendChild(ack);
    }
    return row;
  }

  // -- the report ----------------------------------------------------------------------

  async function loadReport() {
    const day = $("report-day").value;
    const query = new URLSearchParams({ from: day, lang: S.LANG });
    $("report-csv").href = "api/report?" + new URLSearchParams({ from: day, format: "csv", by: "intervals", lang: S.LANG });
    const report = await S.getJSON("api/report?" + query);
    const rows = report.intervals.filter((r) => r.offered || r.answered || r.abandoned);
    fill("report-list", rows, (r) => {
      const row = document.createElement("tr");
      cell(row, S.digits(r.time), T.col_interval, "num");
      cell(row, num(r.answered), T.chart_answered, "num");
      cell(row, num(r.abandoned), T.chart_abandoned, "num");
      cell(row, num(r.offered), T.offered_col, "num");
      cell(row, pct(r.service_level === undefined ? r.sl : r.service_level), T.chart_sl, "num");
      return row;
    }, "report-empty");
  }

  // -- pushed stamps: read a list again only when the daemon says it changed ------------

  let stamps = null;

  function changed(data) {
    const before = stamps;
    stamps = data;
    S.shown(data.now, tz);
    if (!before) return;
    const again = [];
    if (data.abuse !== before.abuse || data.abuse_pending !== before.abuse_pending) {
      again.push(section("abuse", loadAbuse));
    }
    if (data.register !== before.register) {
      again.push(search());
      if (shownRef) again.push(detail(shownRef));
    }
    if (data.callbacks !== before.callbacks) again.push(loadCallbacks());
    Promise.all(again).catch(S.failed);
  }

  async function start() {
    try {
      const board = await S.getJSON("api/wallboard");
      tz = board.site.timezone;
      $("report-day").value = board.site.today;
      S.shown(board.now, tz);
      await Promise.all([section("abuse", loadAbuse), search(), loadCallbacks(),
        section("report", loadReport)]);
      S.follow("?view=review", { review: changed });
    } catch (error) {
      S.failed(error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      search().catch(S.failed);
    });
    $("callback-state").addEventListener("change", () => {
      $("callbacks-list").replaceChildren(); // another list: no row of the last one is kept
      loadCallbacks().catch(S.failed);
    });
    $("report-form").addEventListener("submit", (e) => {
      e.preventDefault();
      section("report", loadReport).catch(S.failed);
    });
  });
  S.onReady(start);
})();
