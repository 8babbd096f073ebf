// The lead's console: agents' states live from the lead socket, force a state, listen /
// whisper / barge on an agent's call (to the lead's own extension), queue figures and the
// wallboard's alerts (answer rate, service level, long waits) every 5 s.
"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("lead-data").textContent);
  const MSG = DATA.messages;
  const LANG = DATA.lang;
  const $ = (id) => document.getElementById(id);

  function say(text, bad) {
    const box = $("lead-message");
    box.className = bad ? "alert" : "notice";
    box.textContent = text;
  }
  async function act(promise) {
    try { return await promise; } catch (error) { say(MSG["desk.failed"] + ": " + error.message, true); return null; }
  }

  function showAgent(row, state, reason, at, callId) {
    const cell = row.querySelector(".state");
    cell.textContent = DATA.stateNames[state] || state;
    cell.className = "state state-" + state;
    row.querySelector(".reason").textContent = state === "not_ready" && reason ? (DATA.reasonNames[reason] || reason) : "";
    if (at) row.dataset.since = at;
    row.dataset.call = callId || "";
    row.querySelector(".call").textContent = callId || "";
    if (!callId) row.querySelector(".queue").textContent = "";
  }
  function tick() {
    document.querySelectorAll("#agents tr[data-agent]").forEach((row) => {
      const since = Date.parse(row.dataset.since);
      row.querySelector(".since").textContent = since ? CC.duration((Date.now() - since) / 1000) : "";
    });
  }
  tick();
  setInterval(tick, 1000);

  function showNoAlerts() {
    $("no-alerts").hidden = $("alerts").querySelector(".alert") !== null;
  }
  // The staffing figures and alert, in this page's language (the API's message is bilingual).
  function staffingText(report) {
    return MSG["lead.below_minimum"].replace("{online}", report.logged_in).replace("{minimum}", report.minimum);
  }
  function showAlert(report) {
    const box = $("staffing-alert");
    box.replaceChildren();
    $("staffing-online").textContent = report.logged_in;
    $("staffing-minimum").textContent = report.minimum;
    if (report.ready !== undefined) $("staffing-ready").textContent = report.ready;
    if (report.scheduled !== undefined && report.scheduled !== null) $("staffing-scheduled").textContent = report.scheduled;
    if (report.shifts_in_force) {
      const inForce = new Set(report.shifts_in_force);
      $("staffing-shifts").textContent = Object.entries(DATA.shiftNames)
        .filter(([code]) => inForce.has(code)).map(([, name]) => name).join(MSG["list.sep"]) || MSG["lead.no_shift"];
    }
    $("staffing-row").className = report.alert ? "under-target" : "";
    if (report.alert) {
      box.appendChild(CC.el("div", staffingText(report), {class: "alert", "data-kind": "staffing", role: "alert"}));
    }
    showNoAlerts();
  }
  // The wallboard's alerts (answer rate and service level under target, long waits); the
  // staffing one comes from routing's own report above.
  function showLiveAlerts(alerts) {
    const box = $("live-alerts");
    box.replaceChildren();
    for (const alert of alerts) {
      if (alert.kind === "staffing") continue;
      box.appendChild(CC.el("div", alert[LANG] || alert.en, {class: "alert", "data-kind": alert.kind, "data-queue": alert.queue}));
    }
    showNoAlerts();
  }

  CC.keepSocket("/leads/events", (message) => {
    if (message.type === "state" && message.agent_id) {
      const row = $("agent-" + message.agent_id);
      if (row) showAgent(row, message.state, message.reason, message.at, message.call_id);
    } else if (message.type === "staffing") {
      showAlert(message);
    }
  }, (up) => {
    $("connection").textContent = up ? MSG["desk.connected"] : MSG["desk.disconnected"];
    document.body.dataset.socket = up ? "open" : "closed";
  });

  function supervision(mode) {
    const extension = $("lead-extension").value.trim();
    return extension ? {mode, extension} : {mode};
  }
  document.querySelectorAll("#agents tr[data-agent]").forEach((row) => {
    row.querySelectorAll("[data-force]").forEach((button) => button.addEventListener("click", async () => {
      const body = button.dataset.force === "ready" ? {state: "ready"} : {state: "not_ready", reason: "forced"};
      const result = await act(CC.api("PUT", "/agents/" + row.dataset.agent + "/state", body));
      if (result) { showAgent(row, result.state, result.reason, result.since, result.call_id); say(MSG["desk.done"]); }
    }));
    // Move between queues: take the agent out of one queue (its level kept) and into another
    // configured one; "add" or "remove" when one side is left empty.
    const memberships = {...((DATA.agents.find((a) => String(a.agent_id) === row.dataset.agent) || {}).queues || {})};
    function showMemberships() {
      row.querySelector(".member-of").textContent = Object.entries(memberships)
        .map(([code, level]) => (DATA.queueNames[code] || code) + " (" + level + ")").join(MSG["list.sep"]);
      const from = row.querySelector(".move-from");
      const first = from.options[0];
      from.replaceChildren(first);
      for (const code of Object.keys(memberships)) from.appendChild(CC.el("option", DATA.queueNames[code] || code, {value: code}));
    }
    row.querySelector("[data-move]").addEventListener("click", async () => {
      const from = row.querySelector(".move-from").value;
      const to = row.querySelector(".move-to").value;
      if (!from && !to) { say(MSG["desk.failed"] + ": " + MSG["lead.move_pick"], true); return; }
      const queues = {...memberships};
      const level = from ? queues[from] : 5;
      if (from) delete queues[from];
      if (to) queues[to] = queues[to] || level;
      const result = await act(CC.api("PUT", "/agents/" + row.dataset.agent + "/queues", {queues}));
      if (!result) return;
      for (const code of Object.keys(memberships)) delete memberships[code];
      Object.assign(memberships, queues);
      showMemberships();
      say(MSG["desk.done"] + ": " + MSG["lead.move"]);
    });
    row.querySelectorAll("[data-supervise]").forEach((button) => button.addEventListener("click", async () => {
      if (!row.dataset.call) { say(MSG["desk.failed"] + ": " + MSG["desk.no_call"], true); return; }
      const result = await act(CC.api("POST", "/calls/" + encodeURIComponent(row.dataset.call) + "/supervise", supervision(button.dataset.supervise)));
      if (result) say(MSG["desk.done"] + ": " + button.textContent);
    }));
  });

  async function refreshQueues() {
    const status = await act(CC.api("GET", "/queues/status"));
    if (!status) return;
    for (const q of status.queues) {
      const row = $("queue-" + q.queue);
      if (!row) continue;
      row.querySelector(".waiting").textContent = q.waiting;
      row.querySelector(".longest").textContent = Math.round(q.longest_wait_seconds) + "s";
      row.querySelector(".members").textContent = q.agents_logged_in;
    }
    showAlert(status.staffing);
    const live = await act(CC.api("GET", "/alerts"));
    if (live) showLiveAlerts(live.alerts);
  }
  setInterval(refreshQueues, 5000);
})();
