// The admin pages: people, departments' contacts, the center's rules. Every change goes
// through /api/v1 (CC.api sends the CSRF token); the API's problems (422 details.problems,
// 409 details.field) are shown next to the field they name: the element whose data-field is
// the problem's field, or the longest dotted prefix of it.
"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("admin-data").textContent);
  const MSG = DATA.messages;
  const LANG = DATA.lang;
  const $ = (id) => document.getElementById(id);
  const here = (path, extra) => path + "?lang=" + encodeURIComponent(LANG) + (extra ? "&" + extra : "");

  function say(text, bad) {
    const box = $("admin-message");
    box.className = bad ? "alert" : "notice";
    box.textContent = text;
  }

  // A notice carried over a reload: ?done=<message key under admin.>, &name=<what>.
  const params = new URLSearchParams(location.search);
  const done = params.get("done");
  if (done && MSG["admin." + done]) say(MSG["admin." + done] + (params.get("name") ? ": " + params.get("name") : ""));

  // ---------------------------------------------------------------- problems beside fields

  function problemsOf(error) {
    const data = error.data || {};
    const details = data.details || {};
    if (Array.isArray(details.problems)) {
      return details.problems.map((p) => (typeof p === "string" ? {field: "", message: p} : p));
    }
    if (details.field) return [{field: String(details.field), message: data.message}];
    return [{field: "", message: (data && data.message) || error.message}];
  }

  function clearProblems(scope) {
    scope.querySelectorAll(".field-error").forEach((node) => node.remove());
    scope.querySelectorAll(".has-error").forEach((node) => node.classList.remove("has-error"));
  }

  function fieldElement(scope, field) {
    const fields = [...scope.querySelectorAll("[data-field]")];
    const parts = field.split(".");
    for (let n = parts.length; n > 0; n--) {
      const key = parts.slice(0, n).join(".");
      const found = fields.find((node) => node.dataset.field === key);
      if (found) return found;
    }
    return null;
  }

  // Shows each problem beside its field; those without one go into the page's message.
  function showProblems(scope, problems) {
    clearProblems(scope);
    const loose = [];
    for (const problem of problems) {
      const target = problem.field ? fieldElement(scope, problem.field) : null;
      if (!target) { loose.push(problem); continue; }
      target.classList.add("has-error");
      target.append(CC.el("span", problem.message, {class: "field-error", "data-error-for": problem.field}));
    }
    const rest = loose.map((p) => (p.field ? p.field + ": " : "") + p.message).join("; ");
    say(MSG["admin.failed"] + (rest ? ": " + rest : ""), true);
    const first = scope.querySelector(".field-error");
    if (first) first.scrollIntoView({block: "center"});
  }

  // The API's answer, or FAILED once the problems are shown.
  const FAILED = Symbol("failed");
  async function submit(scope, call) {
    clearProblems(scope);
    try {
      return await call();
    } catch (error) {
      if (error.status === 422 || error.status === 409) showProblems(scope, problemsOf(error));
      else say(MSG["admin.error"] + ": " + error.message, true);
      return FAILED;
    }
  }

  // A number typed in a field: sent as a number when it is one, else as typed (the API names
  // the field then).
  function numberOr(text) {
    const value = text.trim();
    return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }

  // ---------------------------------------------------------------- people

  function userForm(person) {
    const form = $("user-form");
    const role = $("u-role");
    const skills = [...form.querySelectorAll("input[data-queue]")];
    function sync() {
      $("u-agent").hidden = role.value !== "agent";
      $("u-department-field").hidden = role.value !== "department";
    }
    if (person) {
      $("u-display-name").value = person.display_name;
      role.value = person.role;
      $("u-department").value = person.department || "";
      $("u-language").value = person.language;
      if (person.agent) {
        $("u-extension").value = person.agent.extension;
        $("u-team").value = person.agent.team || "";
        $("u-shift").value = person.agent.shift || "";
        for (const input of skills) input.value = person.agent.queues[input.dataset.queue] ?? "";
      }
    } else {
      role.value = "agent";
    }
    role.addEventListener("change", sync);
    sync();

    function agentBody() {
      const queues = {};
      for (const input of skills) {
        if (input.value.trim() !== "") queues[input.dataset.queue] = numberOr(input.value);
      }
      const agent = {queues, team: $("u-team").value.trim() || null, shift: $("u-shift").value || null};
      const extension = $("u-extension").value.trim();
      const sipPassword = $("u-sip-password").value;
      if (!person || !person.agent || extension !== person.agent.extension) agent.extension = extension;
      if (!person || sipPassword !== "") agent.sip_password = sipPassword;
      return agent;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {display_name: $("u-display-name").value.trim(), language: $("u-language").value};
      if (!person || role.value !== person.role) body.role = role.value;
      if (role.value === "department") body.department = $("u-department").value || null;
      if (role.value === "agent") body.agent = agentBody();
      if (!person) {
        body.username = $("u-username").value.trim();
        body.password = $("u-password").value;
      }
      const saved = await submit(form, () =>
        person ? CC.api("PATCH", "/users/" + person.id, body) : CC.api("POST", "/users", body));
      if (saved === FAILED) return;
      if (person) location.href = here("/admin/people/" + person.id, "done=saved");
      else location.href = here("/admin/people", "done=created&name=" + encodeURIComponent(saved.username));
    });
  }

  function personActions(person) {
    const toggle = $("toggle-active");
    toggle.addEventListener("click", async () => {
      const active = toggle.dataset.active === "true";
      const saved = await submit(toggle.parentElement, () =>
        CC.api("PATCH", "/users/" + person.id, {active}));
      if (saved !== FAILED) location.href = here("/admin/people/" + person.id, "done=" + (active ? "enabled_done" : "disabled_done"));
    });
    const form = $("password-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const saved = await submit(form, () =>
        CC.api("PATCH", "/users/" + person.id, {password: $("p-password").value}));
      if (saved !== FAILED) { $("p-password").value = ""; say(MSG["admin.password_reset_done"]); }
    });
  }

  // ---------------------------------------------------------------- departments' contacts

  function contactBody(row) {
    const value = (name) => row.querySelector(`[name="${name}"]`).value;
    const user = value("user_id");
    return {
      role: value("role"),
      name: value("name").trim(),
      phone: value("phone").trim() || null,
      user_id: user ? Number(user) : null,
      rank: numberOr(value("rank")),
    };
  }

  function departments() {
    document.querySelectorAll("section.department").forEach((card) => {
      const code = card.dataset.code;
      const base = "/departments/" + encodeURIComponent(code) + "/contacts";
      card.addEventListener("click", async (event) => {
        const button = event.target.closest("button");
        if (!button) return;
        const row = button.closest("tr");
        if (button.classList.contains("add-contact")) {
          const saved = await submit(row, () => CC.api("POST", base, contactBody(row)));
          if (saved !== FAILED) location.href = here("/admin/departments", "done=saved&name=" + encodeURIComponent(saved.name));
        } else if (button.classList.contains("save-contact")) {
          const saved = await submit(row, () => CC.api("PATCH", base + "/" + row.dataset.contact, contactBody(row)));
          if (saved !== FAILED) say(MSG["admin.saved"] + ": " + saved.name);
        } else if (button.classList.contains("remove-contact")) {
          const removed = await submit(row, () => CC.api("DELETE", base + "/" + row.dataset.contact));
          if (removed !== FAILED) { row.remove(); say(MSG["admin.removed"]); }
        }
      });
    });
  }

  // ---------------------------------------------------------------- the center's rules

  function leaves(node, path, out) {
    if (node && typeof node === "object" && !Array.isArray(node) && Object.keys(node).length) {
      for (const [key, value] of Object.entries(node)) leaves(value, path.concat([key]), out);
    } else {
      out.push([path, node]);
    }
    return out;
  }

  function kindOf(value) {
    if (typeof value === "number") return "number";
    if (typeof value === "boolean") return "boolean";
    if (typeof value === "string") return "string";
    return "json";  // lists, empty tables, null
  }

  function fieldRow(path, value) {
    const key = path.join(".");
    const kind = kindOf(value);
    const row = CC.el("tr", null, {"data-field": key});
    const label = CC.el("td", null);
    label.append(CC.el("code", key, {class: "key"}));
    row.append(label);
    const cell = CC.el("td", null);
    let input;
    if (kind === "boolean") {
      input = CC.el("select", null);
      for (const option of ["true", "false"]) input.append(CC.el("option", option, {value: option}));
      input.value = String(value);
    } else if (kind === "string" && (value.length > 60 || value.includes("\n"))) {
      input = CC.el("textarea", null, {rows: "3", cols: "60"});
      input.value = value;
    } else {
      input = CC.el("input", null, {size: kind === "number" ? "8" : "60"});
      input.value = kind === "json" ? JSON.stringify(value) : String(value);
    }
    input.dataset.kind = kind;
    input.dataset.path = JSON.stringify(path);
    input.setAttribute("aria-label", key);
    cell.append(input);
    row.append(cell);
    return row;
  }

  function readField(input) {
    const text = input.value;
    switch (input.dataset.kind) {
      case "number": return numberOr(text);
      case "boolean": return text === "true";
      case "string": return text;
      default:
        try { return JSON.parse(text); } catch (_) { return text; }
    }
  }

  function config() {
    const body = $("config-fields").querySelector("tbody");
    const json = $("config-json");
    let jsonView = false;

    function render(documentValue) {
      body.replaceChildren(...leaves(documentValue, [], []).map(([path, value]) => fieldRow(path, value)));
    }
    function fromFields() {
      let root = {};
      for (const input of body.querySelectorAll("[data-path]")) {
        const path = JSON.parse(input.dataset.path);
        const value = readField(input);
        if (!path.length) { root = value; continue; }
        let node = root;
        for (const key of path.slice(0, -1)) node = (node[key] = node[key] || {});
        node[path[path.length - 1]] = value;
      }
      return root;
    }
    function current() {
      if (!jsonView) return fromFields();
      try { return JSON.parse(json.value); } catch (error) {
        say(MSG["admin.bad_json"] + ": " + error.message, true);
        return null;
      }
    }
    function showView(asJson) {
      jsonView = asJson;
      json.hidden = !asJson;
      $("config-fields").hidden = asJson;
      $("view-json").disabled = asJson;
      $("view-fields").disabled = !asJson;
    }
    $("view-json").addEventListener("click", () => {
      json.value = JSON.stringify(fromFields(), null, 2);
      showView(true);
    });
    $("view-fields").addEventListener("click", () => {
      const parsed = current();
      if (parsed === null) return;
      render(parsed);
      showView(false);
    });

    // A problem line as check-config prints it: "<dir>/queues.toml: queues.general.x: message".
    function parseLine(line) {
      const found = /^(.*?\.toml): (\S+): ([\s\S]*)$/.exec(line);
      if (!found) return {file: "", key: "", message: line};
      const file = found[1].split("/").pop();
      return {file, key: found[2], message: found[3]};
    }
    // "{name}" in a catalog message filled from a problem's context.
    function fill(template, values) {
      return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
    }
    // A problem in the page's language, from its type and context (pages/config_messages.py):
    // one of the project's own checks (context.check) is said in the page's language first,
    // then put in its type's message.
    function problemText(item) {
      const context = item.context || {};
      const check = context.check && MSG["admin.check." + context.check];
      const message = check ? fill(check, context) : (context.message ?? item.message);
      const template = MSG["admin.problem." + item.type];
      if (!template) return fill(MSG["admin.problem.value_error"], {message});
      const text = fill(template, {...context, message});
      return "input" in context && !template.includes("{input}") ? text + fill(MSG["admin.problem.got"], context) : text;
    }
    function problemsOfConfig(details) {
      if (Array.isArray(details.items)) {
        return details.items.map((item) => ({file: item.file, key: item.key, message: problemText(item)}));
      }
      if (!Array.isArray(details.problems)) return null;
      return details.problems.map((line) =>
        typeof line === "string" ? parseLine(line) : {file: "", key: line.field, message: line.message});
    }
    function showConfigProblems(error) {
      const list = $("problem-list");
      list.replaceChildren();
      clearProblems(body);
      const details = (error.data || {}).details || {};
      const problems = problemsOfConfig(details);
      if (problems === null) { say(MSG["admin.error"] + ": " + error.message, true); return; }
      for (const problem of problems) {
        const item = CC.el("li", null, {"data-key": problem.key});
        const ours = problem.file === "" || problem.file === DATA.file + ".toml";
        if (!ours) item.append(CC.el("span", problem.file + " (" + MSG["admin.other_file"] + ") ", {class: "muted"}));
        if (problem.key) item.append(CC.el("code", problem.key, {class: "key"}), document.createTextNode(": "));
        item.append(document.createTextNode(problem.message));
        list.append(item);
        const target = ours && problem.key ? fieldElement(body, problem.key) : null;
        if (target) {
          target.classList.add("has-error");
          target.lastChild.append(CC.el("span", problem.message, {class: "field-error", "data-error-for": problem.key}));
        }
      }
      $("config-problems").hidden = false;
      say(fill(MSG["admin.config_refused"], {file: DATA.file, count: problems.length}), true);
    }

    async function store(call) {
      try {
        const saved = await call();
        if (saved.version === DATA.version) { say(MSG["admin.unchanged"]); return; }
        location.href = here("/admin/config/" + DATA.file, "saved=" + saved.version);
      } catch (error) {
        if (error.status === 422) showConfigProblems(error);
        else say(MSG["admin.error"] + ": " + error.message, true);
      }
    }
    $("config-save").addEventListener("click", () => {
      const documentValue = current();
      if (documentValue === null) return;
      const note = $("config-note").value.trim();
      const path = "/config/" + DATA.file + (note ? "?note=" + encodeURIComponent(note) : "");
      store(() => CC.api("PUT", path, documentValue));
    });
    $("history").addEventListener("click", (event) => {
      const button = event.target.closest("button.rollback");
      if (!button) return;
      store(() => CC.api("POST", "/config/" + DATA.file + "/versions/" + button.dataset.version + "/rollback"));
    });
    render(DATA.document);
  }

  if (DATA.page === "people") userForm(null);
  if (DATA.page === "person") { userForm(DATA.person); personActions(DATA.person); }
  if (DATA.page === "departments") departments();
  if (DATA.page === "config") config();
})();
