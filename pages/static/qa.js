// The QA page: find recordings, play one through its replay link (the <audio> element seeks
// with HTTP Range) over a waveform drawn from the peaks, show the call's timeline and save a
// score. Every call goes through CC.api (common.js): the sign-in cookie and the CSRF token.
"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("qa-data").textContent);
  const LANG = DATA.lang;
  const MSG = DATA.messages;
  const SCORECARD = DATA.scorecard;
  const TZ = DATA.timezone;
  const QUEUES = Object.fromEntries(DATA.queues.map((q) => [q.code, q.name]));
  const $ = (id) => document.getElementById(id);

  const localTime = (iso) => new Date(iso).toLocaleString(LANG, {timeZone: TZ, hour12: false});
  const clock = (seconds) => CC.duration(Math.round(seconds));
  const recordingPath = (id, rest) => "/recordings/" + encodeURIComponent(id) + (rest || "");

  let nextOffset = 0;
  let picked = null;
  let peaks = [];
  let peakSeconds = 0.1;
  let pauses = [];  // PCI-paused spans (GET /recordings/{id}), marked at their file offset
  const player = $("player");
  const canvas = $("waveform");

  function say(text) {
    $("score-result").replaceChildren(CC.el("span", text, {"class": "error", "id": "qa-error"}));
  }

  function query() {
    const params = new URLSearchParams();
    for (const [name, id] of [["agent", "f-agent"], ["caller", "f-caller"], ["queue", "f-queue"],
        ["ticket", "f-ticket"], ["min_duration", "f-min"], ["qa_status", "f-status"]]) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    // Typed as "YYYY-MM-DD HH:MM" (or a date alone), the center's local time, the same in
    // both languages: a datetime-local field would follow the browser's locale instead.
    for (const [name, id] of [["since", "f-since"], ["until", "f-until"]]) {
      const value = $(id).value.trim();
      if (!value) continue;
      const found = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}))?$/.exec(value);
      if (!found) throw new Error(MSG["qa.when_invalid"] + ": " + value);
      params.set(name, found[1] + "T" + (found[2] || "00:00") + ":00");
    }
    return params;
  }

  async function find(append) {
    const params = query();
    params.set("limit", "50");
    params.set("offset", append ? String(nextOffset) : "0");
    const rows = $("result-rows");
    if (!append) rows.replaceChildren();
    const page = await CC.api("GET", "/recordings?" + params);
    for (const item of page.items) {
      const row = document.createElement("tr");
      row.dataset.id = item.id;
      row.append(CC.el("td", localTime(item.started_at)), CC.el("td", item.agent || ""),
        CC.el("td", item.caller || ""), CC.el("td", QUEUES[item.queue] || item.queue || ""),
        CC.el("td", clock(item.duration_s)),
        CC.el("td", MSG["qa.status." + item.qa_status] || item.qa_status));
      const cell = document.createElement("td");
      const button = CC.el("button", MSG["qa.play"], {"class": "play", "type": "button", "data-id": item.id});
      button.addEventListener("click", () => pick(item, row).catch((error) => say(error.message)));
      cell.append(button);
      row.append(cell);
      rows.append(row);
    }
    nextOffset = page.next_offset || 0;
    $("more").hidden = !page.has_more;
    $("no-results").hidden = rows.children.length > 0;
  }

  function draw() {
    const ctx = canvas.getContext("2d");
    const width = canvas.width, height = canvas.height;
    ctx.fillStyle = "#0c141c";
    ctx.fillRect(0, 0, width, height);
    if (!peaks.length) return;
    const duration = player.duration || peaks.length * peakSeconds;
    const playedX = duration ? (player.currentTime / duration) * width : 0;
    const step = width / peaks.length;
    peaks.forEach((peak, i) => {
      const x = i * step;
      const bar = Math.max(1, (peak / 100) * (height - 4));
      ctx.fillStyle = x < playedX ? "#9fd3ff" : "#3d5a73";
      ctx.fillRect(x, (height - bar) / 2, Math.max(1, step - 0.5), bar);
    });
    ctx.fillStyle = "#ff5c5c";  // a pause: nothing recorded here (marked, not audio)
    for (const span of pauses) {
      if (duration) ctx.fillRect((span.offset_s / duration) * width - 1, 0, 3, height);
    }
    ctx.fillStyle = "#ffcc00";
    ctx.fillRect(playedX, 0, 2, height);
  }

  canvas.addEventListener("click", (event) => {
    const rect = canvas.getBoundingClientRect();
    const share = (event.clientX - rect.left) / rect.width;
    const duration = player.duration || peaks.length * peakSeconds;
    if (duration) player.currentTime = share * duration;
    draw();
  });
  player.addEventListener("timeupdate", draw);
  player.addEventListener("seeked", draw);
  player.addEventListener("loadedmetadata", draw);

  async function showTimeline(item) {
    const timeline = $("timeline");
    timeline.replaceChildren();
    try {
      const call = await CC.api("GET", "/calls/" + encodeURIComponent(item.call_id));
      const start = new Date(call.arrived_at || item.started_at).getTime();
      for (const event of call.events) {
        const seconds = (new Date(event.at).getTime() - start) / 1000;
        const data = event.data || {};
        const inFile = data.offset_s == null ? "" : MSG["qa.paused_span"] + " @" + clock(data.offset_s);
        const detail = QUEUES[data.queue] || data.digit || data.value || data.to
          || data.agent_uri || data.outcome || inFile || "";
        const li = document.createElement("li");
        li.dataset.type = event.type;
        li.append(CC.el("span", "+" + clock(seconds), {"class": "at"}),
          CC.el("span", (MSG["event." + event.type] || event.type) + (detail ? " · " + detail : "")));
        if (data.offset_s != null) {  // a pause: seek to where the recording goes on
          li.classList.add("seekable");
          li.addEventListener("click", () => { player.currentTime = data.offset_s; draw(); });
        }
        timeline.append(li);
      }
    } catch (error) {
      timeline.append(CC.el("li", error.message, {"class": "error"}));
    }
  }

  async function pick(item, row) {
    picked = item;
    document.querySelectorAll("#result-rows tr").forEach((r) => r.classList.remove("picked"));
    row.classList.add("picked");
    $("now-playing").textContent =
      localTime(item.started_at) + " · " + (item.agent || "") + " · " + (item.caller || "");
    $("score-submit").disabled = false;
    $("score-result").replaceChildren();
    const link = await CC.api("POST", recordingPath(item.id, "/link"));
    player.src = link.url;  // a same-origin replay link: plays without other credentials
    peaks = [];
    pauses = [];
    try {
      pauses = (await CC.api("GET", recordingPath(item.id))).paused_spans || [];
    } catch (error) { pauses = []; }
    try {
      const media = await CC.api("GET", recordingPath(item.id, "/media"));
      peaks = media.peaks;
      peakSeconds = media.peak_seconds;
    } catch (error) { peaks = []; }  // not post-processed yet: no waveform
    draw();
    await showTimeline(item);
  }

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    find(false).catch((error) => say(error.message));
  });
  $("more").addEventListener("click", () => find(true).catch((error) => say(error.message)));

  $("score-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!picked) return;
    const scores = {};
    for (const item of SCORECARD.items) scores[item.code] = Number($("score-" + item.code).value);
    const result = $("score-result");
    try {
      const saved = await CC.api("POST", "/qa/evaluations", {
        recording_id: picked.id, scorecard: SCORECARD.code, scores,
        comment: $("score-comment").value || null,
      });
      result.replaceChildren(CC.el("span", MSG["qa.saved"] + " · " + MSG["qa.total"] + " " + saved.total,
        {"id": "score-total", "class": "ok"}));
    } catch (error) {
      result.replaceChildren(CC.el("span", error.message, {"class": "error", "id": "score-error"}));
    }
  });

  find(false).catch((error) => say(error.message));
})();
