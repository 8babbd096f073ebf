// The agent desktop: state buttons, the screen pop from the agent's event socket, call
// controls, the ticket form pre-filled from the pop, callbacks and click-to-call. Everything
// goes through the same /api/v1 endpoints programs use (cookie + CSRF token).
"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("desk-data").textContent);
  const MSG = DATA.messages;
  const LANG = DATA.lang;
  const $ = (id) => document.getElementById(id);
  let since = DATA.snapshot.since ? Date.parse(DATA.snapshot.since) : Date.now();
  let currentCall = DATA.snapshot.call_id || null;

  // The caller's way through the voice menu as the engine reports it: one step per node
  // ({node, digit | digits | reason, target}), then where it led ("main [1] → repair_room
  // [3589] → repair"); plain names are shown as they are.
  function menuText(path) {
    const parts = path.map((step) => {
      if (typeof step !== "object" || step === null) return String(step);
      const keyed = step.digit || step.digits;
      return (step.node || "") + (keyed ? " [" + keyed + "]" : step.reason ? " (" + step.reason + ")" : "");
    });
    const last = path[path.length - 1];
    if (last && typeof last === "object" && last.target) parts.push(String(last.target));
    return parts.join(" → ");
  }

  function say(text, bad) {
    const box = $("desk-message");
    box.className = bad ? "alert" : "notice";
    box.textContent = text;
  }

  async function act(promise) {
    try { const result = await promise; return result; }
    catch (error) { say(MSG["desk.failed"] + ": " + error.message, true); return null; }
  }

  // ------------------------------------------------------------ state
  function showState(state, reason, at) {
    const node = $("agent-state");
    node.textContent = DATA.stateNames[state] || state;
    node.dataset.state = state;
    node.className = "big state-" + state;
    $("state-reason").textContent = state === "not_ready" && reason ? "(" + (DATA.reasonNames[reason] || reason) + ")" : "";
    if (at) since = Date.parse(at) || Date.now();
    const onCall = ["reserved", "on_call", "on_hold"].includes(state);
    document.querySelectorAll("[data-call], [data-consult], #btn-transfer").forEach((b) => { b.disabled = !onCall; });
    $("btn-end-wrap-up").disabled = state !== "wrap_up";
    tick();
  }
  function tick() { $("state-time").textContent = CC.duration((Date.now() - since) / 1000); }
  showState(DATA.snapshot.state, DATA.snapshot.reason, DATA.snapshot.since);
  tick();
  setInterval(tick, 1000);

  function showQueues(queues) {
    $("my-queues").textContent = Object.entries(queues || {}).map(([q, l]) => (DATA.queues[q] || q) + " (" + l + ")").join(" ");
  }
  function applyState(body) {
    if (!body) return;
    showState(body.state, body.reason, body.since);
    if (body.queues) showQueues(body.queues);
  }

  $("btn-ready").addEventListener("click", async () => applyState(await act(CC.api("PUT", "/agents/me/state", {state: "ready"}))));
  $("btn-not-ready").addEventListener("click", async () =>
    applyState(await act(CC.api("PUT", "/agents/me/state", {state: "not_ready", reason: $("reason").value}))));
  $("btn-login").addEventListener("click", async () => applyState(await act(CC.api("POST", "/agents/me/login"))));
  $("btn-logout").addEventListener("click", async () => applyState(await act(CC.api("POST", "/agents/me/logout"))));

  // ------------------------------------------------------------ the screen pop
  function list(node, items, render) {
    node.replaceChildren();
    if (!items || !items.length) { node.textContent = MSG["desk.none"]; return; }
    const ul = CC.el("ul");
    for (const item of items) ul.appendChild(CC.el("li", render(item)));
    node.appendChild(ul);
  }

  function showPop(pop) {
    currentCall = pop.call_id;
    $("pop-empty").hidden = true;
    $("pop").hidden = false;
    $("pop").dataset.callId = pop.call_id;
    $("pop-ringing").hidden = false;
    const customer = pop.customer;
    const caller = (pop.caller && pop.caller.number) || "";
    $("pop-caller").textContent = caller;
    // The database did not answer when the pop was built: the number alone, no records.
    const unread = !!pop.records_unavailable;
    $("pop-unavailable").hidden = !unread;
    $("pop-name").textContent = customer ? customer.name : unread ? MSG["desk.not_read"] : MSG["desk.new_customer"];
    $("pop-member").textContent = customer ? (customer.member ? MSG["desk.yes"] : MSG["desk.no"]) : "";
    $("pop-units").textContent = customer ? customer.units.map((u) => u.code).join(MSG["list.sep"]) : "";
    $("pop-fee").textContent = !customer ? ""
      : customer.fee_status === "arrears" ? MSG["desk.arrears"] + " ¥" + customer.arrears_amount
      : (MSG["desk.fee." + customer.fee_status] || customer.fee_status);
    $("pop-fee").className = customer && customer.fee_status === "arrears" ? "under-target" : "";
    const queueName = pop.queue ? (pop.queue.name[LANG] || pop.queue.code) : "";
    $("pop-queue").textContent = queueName + (pop.wait_seconds !== undefined ? " · " + MSG["desk.wait"] + " " + CC.duration(pop.wait_seconds) : "");
    $("pop-menu").textContent = menuText(pop.menu_path || []);
    $("pop-digits").textContent = Object.entries(pop.digits || {}).map(([k, v]) => k + "=" + v).join(", ") || MSG["desk.none"];
    const ticketText = (tk) => tk.number + " · " + tk.status + " · " + (tk.what || "") + (tk.overdue ? " ⚠" : "");
    const callText = (c) => CC.localTime(c.arrived_at, DATA.timezone) + " · " + (c.queue || "") + " · " + (c.outcome || "");
    for (const [id, items, render] of [["pop-open-tickets", pop.open_tickets, ticketText],
      ["pop-recent-tickets", pop.recent_tickets, ticketText], ["pop-recent-calls", pop.recent_calls, callText]]) {
      if (unread) $(id).textContent = MSG["desk.not_read"];  // unknown, not "none"
      else list($(id), items, render);
    }
    // unknown caller: the new-customer form, pre-filled with the number (not when the
    // records could not be read: the caller may well be known)
    const form = $("new-customer");
    form.hidden = !!customer || unread;
    if (!customer) {
      form.elements.phone.value = (pop.new_customer && pop.new_customer.phone) || caller;
      form.elements.unit.value = (pop.new_customer && pop.new_customer.unit) || "";
    }
    prefillTicket(pop);
  }

  function prefillTicket(pop) {
    const form = $("ticket-form");
    const customer = pop.customer;
    const caller = (pop.caller && pop.caller.number) || "";
    const unitFromDigits = pop.digits && pop.digits.room;
    form.elements.reporter.value = customer ? customer.name : "";
    form.elements.unit.value = customer && customer.units.length ? customer.units[0].code : (unitFromDigits || "");
    form.elements.contact.value = caller;
    form.elements.when.value = new Date().toLocaleString(LANG, {timeZone: DATA.timezone, hour12: false});
    form.elements.call_id.value = pop.call_id;
    const queueCode = pop.queue && pop.queue.code;
    const category = DATA.defaultCategory[queueCode];
    if (category && [...form.elements.category.options].some((o) => o.value === category)) {
      form.elements.category.value = category;
    }
    $("ticket-result").textContent = "";
  }

  $("new-customer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const body = {name: f.name.value, phone: f.phone.value, kind: f.kind.value};
    if (f.unit.value) body.unit = f.unit.value;
    const saved = await act(CC.api("POST", "/customers", body));
    if (saved) { say(MSG["desk.customer_saved"]); $("pop-name").textContent = f.name.value; event.target.hidden = true; }
  });

  // ------------------------------------------------------------ events from the socket
  function onEvent(message) {
    switch (message.type) {
      case "state": showState(message.state, message.reason, message.snapshot ? message.since : message.at); break;
      case "offer": showPop(message); break;
      case "answered": $("pop-ringing").hidden = true; break;
      case "offer_cancelled": case "missed": $("pop-ringing").hidden = true; break;
      case "command_failed": say(MSG["desk.event.command_failed"] + ": " + (message.reason || message.command), true); break;
      case "queues": showQueues(message.queues); break;
      default: break;
    }
  }
  CC.keepSocket("/agents/me/events", onEvent, (up) => {
    $("connection").textContent = up ? MSG["desk.connected"] : MSG["desk.disconnected"];
    document.body.dataset.socket = up ? "open" : "closed";
  });

  // ------------------------------------------------------------ call controls
  document.querySelectorAll("[data-call]").forEach((button) => button.addEventListener("click", async () => {
    if (await act(CC.api("POST", "/agents/me/call/" + button.dataset.call))) say(MSG["desk.done"]);
  }));
  function target() {
    const [kind, value] = $("transfer-target").value.split(":");
    return {kind, target: value};
  }
  $("btn-transfer").addEventListener("click", async () => {
    if (await act(CC.api("POST", "/agents/me/call/transfer", {...target(), mode: "blind"}))) say(MSG["desk.done"]);
  });
  document.querySelectorAll("[data-consult]").forEach((button) => button.addEventListener("click", async () => {
    const t = target();
    if (t.kind === "queue") { say(MSG["desk.failed"] + ": " + MSG["desk.to_agent"] + " / " + MSG["desk.to_number"], true); return; }
    if (await act(CC.api("POST", "/agents/me/call/consult", {...t, action: button.dataset.consult}))) say(MSG["desk.done"]);
  }));
  $("btn-end-wrap-up").addEventListener("click", async () =>
    applyState(await act(CC.api("POST", "/agents/me/wrap-up", {action: "end", disposition: $("disposition").value, then_state: "ready"}))));

  // ------------------------------------------------------------ the ticket form
  // One Idempotency-Key per ticket the agent means to register, kept while that content is
  // unsaved: a retry, or Save pressed again after giving up, sends the same key, and the API
  // answers the ticket an earlier attempt stored if its commit went through (a 503 or a lost
  // answer cannot tell). A new content, or a saved ticket, starts a new key. A 503 (the
  // database restarting) or a lost connection is tried again after Retry-After seconds.
  const TICKET_TRIES = 12;
  let unsaved = null;  // {key, body}: the content last submitted and not yet saved

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);  // crypto.randomUUID needs https; the desk may be on http
    return "desk-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function keyFor(body) {
    const text = JSON.stringify(body);
    if (!unsaved || unsaved.body !== text) unsaved = {key: newKey(), body: text};
    return unsaved.key;
  }
  function ticketNote(text, bad) {
    const box = $("ticket-result");
    box.className = bad ? "alert" : "notice";
    box.textContent = text;
  }
  const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

  async function saveTicket(body) {
    const key = keyFor(body);
    for (let attempt = 1; ; attempt++) {
      try {
        const ticket = await CC.api("POST", "/tickets", body, {"Idempotency-Key": key});
        unsaved = null;
        return ticket;
      } catch (error) {
        const retriable = error.status === 503 || error.status === undefined;  // undefined: no answer
        if (!retriable) throw error;
        if (attempt >= TICKET_TRIES) throw new Error(MSG["desk.ticket_not_saved"]);
        const seconds = Math.min(Math.max(error.retryAfter || 2, 1), 30);
        ticketNote(MSG["desk.ticket_retrying"].replace("{seconds}", seconds).replace("{attempt}", attempt + 1), true);
        await pause(seconds);
      }
    }
  }

  $("ticket-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const body = {
      category: f.category.value, track: f.track.value, reporter: f.reporter.value, unit: f.unit.value,
      what: f.what.value, when: f.when.value, contact: f.contact.value, description: f.description.value,
    };
    if (f.call_id.value) body.call_id = f.call_id.value;
    const button = $("save-ticket");
    button.disabled = true;  // one submission at a time: a second click is not a second ticket
    ticketNote(MSG["desk.ticket_saving"]);
    let ticket = null;
    try {
      ticket = await saveTicket(body);
    } catch (error) {  // next to the form as well as on top: the agent is looking here
      const text = MSG["desk.failed"] + ": " + error.message;
      ticketNote(text, true);
      say(text, true);
      return;
    } finally {
      button.disabled = false;
    }
    const box = $("ticket-result");
    box.className = "notice";
    box.replaceChildren(
      CC.el("span", MSG["desk.ticket_saved"] + ": "),
      CC.el("a", ticket.number, {href: "/tickets/" + encodeURIComponent(ticket.number) + "?lang=" + LANG, id: "saved-ticket-number"}),
      CC.el("span", " · " + MSG["desk.department"] + ": ", {}),
      CC.el("span", DATA.departmentNames[ticket.department] || ticket.department || "-", {id: "saved-ticket-department"}),
      CC.el("span", " · " + MSG["desk.due"] + ": " + (CC.localTime(ticket.due_at, DATA.timezone) || "-"), {id: "saved-ticket-due"}),
    );
  });

  // ------------------------------------------------------------ callbacks and click-to-call
  document.querySelectorAll(".callback-form").forEach((form) => form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const body = {outcome: f.outcome.value};
    if (f.result.value) body.result = f.result.value;
    if (f.reason.value) body.reason = f.reason.value;
    if (await act(CC.api("POST", "/callbacks/" + form.dataset.callback + "/attempts", body))) { say(MSG["desk.done"]); form.hidden = true; }
  }));
  async function dial(number) {
    if (await act(CC.api("POST", "/agents/me/click-to-call", {number}))) say(MSG["desk.done"] + ": " + number);
  }
  document.querySelectorAll("[data-dial]").forEach((b) => b.addEventListener("click", () => dial(b.dataset.dial)));
  $("dial-form").addEventListener("submit", (event) => { event.preventDefault(); dial(event.target.elements.number.value); });
})();
