// The desk's actions on the call shown (during or after it): report an abusive
// caller, flag a follow-up with a due time, and a note, a status or a redress on
// the call's complaint. Every request goes through Shenava.postJSON.
"use strict";

(function () {
  const S = window.Shenava;
  if (!S) return;
  const { T, t } = S;
  const $ = (id) => document.getElementById(id);
  let call = null;
  let agentId = null;

  function said(id, ok, text) {
    const el = $(id);
    el.hidden = false;
    el.className = ok ? "done" : "error";
    el.textContent = text;
    el.dataset.ok = ok ? "1" : "0";
  }

  function refused(error) {
    return t("status_error", { message: error.message || String(error) });
  }

  S.onCall((shown, agent) => {
    agentId = agent;
    call = shown;
    const actions = $("call-actions");
    if (!actions) return;
    actions.hidden = !shown;
    const complaint = shown && shown.complaint ? shown.complaint.reference : null;
    $("complaint-form").hidden = !complaint;
    $("complaint-ref").textContent = complaint || "";
    // A redress is a supervisor's decision (the register refuses an agent's): not offered.
    $("complaint-redress-group").hidden = !S.me || S.me.role === "agent";
  });

  const callPath = (action) => "api/agents/" + encodeURIComponent(agentId) + "/calls/"
    + encodeURIComponent(call.call_id) + action;

  function wire() {
    if (!$("call-actions")) return;
    // A follow-up an hour from now unless the agent picks another time.
    const due = $("follow-up-due");
    const inAnHour = new Date(Date.now() + 3600 * 1000);
    inAnHour.setSeconds(0, 0);
    const pad = (n) => String(n).padStart(2, "0");
    due.value = inAnHour.getFullYear() + "-" + pad(inAnHour.getMonth() + 1) + "-"
      + pad(inAnHour.getDate()) + "T" + pad(inAnHour.getHours()) + ":" + pad(inAnHour.getMinutes());

    $("abuse-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!call) return;
      try {
        const answer = await S.postJSON(callPath("/abuse"), {
          category: $("abuse-category").value,
          note: $("abuse-note").value,
          complaint_ref: call.complaint ? call.complaint.reference : null,
        });
        said("abuse-result", true, t("abuse_reported", { id: answer.report_id }));
        $("abuse-result").dataset.report = answer.report_id;
        $("abuse-note").value = "";
      } catch (error) {
        said("abuse-result", false, refused(error));
      }
    });

    $("follow-up-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!call) return;
      const when = new Date($("follow-up-due").value).getTime() / 1000;
      try {
        const answer = await S.postJSON(callPath("/follow-up"), {
          due_at: when, note: $("follow-up-note").value,
        });
        said("follow-up-result", true, t("follow_up_flagged", { time: S.timeOf(answer.due_at) }));
        $("follow-up-result").dataset.flag = answer.flag_id;
      } catch (error) {
        said("follow-up-result", false, refused(error));
      }
    });

    $("complaint-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!call || !call.complaint) return;
      const body = {};
      const note = $("complaint-note").value.trim();
      const status = $("complaint-status").value;
      const redress = $("complaint-redress").value.trim();
      if (note) body.note = note;
      if (status) body.status = status;
      if (redress) body.redress = redress;
      if (!Object.keys(body).length) return;
      try {
        const answer = await S.postJSON("api/complaints/" + encodeURIComponent(call.complaint.reference), body);
        said("complaint-result", true, t("complaint_saved", {
          ref: call.complaint.reference, status: S.code("status_", answer.status || status) || "",
        }));
        $("complaint-note").value = "";
        $("complaint-redress").value = "";
      } catch (error) {
        said("complaint-result", false, refused(error));
      }
    });
  }

  document.addEventListener("DOMContentLoaded", wire);
  void T;
})();
