// The reviewer's page: walk the queue of suspected errors one item at a time, accept (A) or
// correct (C) each, or pass (N / →). Item text and every claim reach the page through the JSON API
// and are set with textContent only, so nothing in an item can run.
"use strict";

(function () {
  const root = document.getElementById("reviewer");
  if (!root) return;
  const project = root.dataset.project;
  const needsEvidence = root.dataset.needsEvidence === "true";
  const base = "/api/v1/projects/" + encodeURIComponent(project) + "/review";
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const $ = (id) => document.getElementById(id);
  const labelButtons = Array.from(document.querySelectorAll("#labels .label"));
  const valueInput = $("correct-value");
  const evidenceInput = $("correct-evidence");

  let queue = [];
  let index = 0;
  let busy = false;
  let correcting = false;
  let picked = -1;
  let reviewed = 0;
  const passed = new Set();
  const done = new Set();

  function show(text) {
    return text === null || text === undefined ? "–" : typeof text === "string" ? text : JSON.stringify(text);
  }

  function status(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", Boolean(isError));
  }

  function current() {
    return queue[index];
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function claimValue(claim) {
    if (claim.value !== null && claim.value !== undefined) return show(claim.value);
    if (Array.isArray(claim.probs)) return "probabilities " + claim.probs.map((p) => Number(p).toFixed(2)).join(" / ");
    return "–";
  }

  function render(entry) {
    $("item").hidden = false;
    $("verdict").hidden = false;
    $("actions").hidden = false;
    $("item-meta").textContent = "item " + entry.external_id + " (#" + entry.item_id + ")";
    $("item-text").textContent = entry.text === null ? "" : entry.text;
    const data = $("item-data");
    const hasData = entry.data !== null && entry.data !== undefined && Object.keys(entry.data).length > 0;
    data.hidden = !hasData;
    data.textContent = hasData ? JSON.stringify(entry.data, null, 2) : "";
    $("resolved-label").textContent = show(entry.label);
    $("resolved-prob").textContent = entry.probability === null ? "–" : entry.probability.toFixed(2);
    $("resolved-basis").textContent = entry.basis ? "(from " + entry.basis + ")" : "";
    const reasons = $("reasons");
    reasons.replaceChildren();
    for (const reason of entry.reasons) {
      const li = document.createElement("li");
      li.dataset.code = reason.code;
      li.textContent = reason.message;
      reasons.appendChild(li);
    }
    const body = document.querySelector("#claims tbody");
    body.replaceChildren();
    for (const claim of entry.claims) {
      const row = document.createElement("tr");
      cell(row, claim.source);
      cell(row, claim.kind);
      cell(row, claimValue(claim));
      cell(row, claim.created_at ? new Date(claim.created_at).toLocaleString() : "");
      body.appendChild(row);
    }
    status("Item " + (index + 1) + " of " + queue.length + ": A accept · C correct · N next");
  }

  function empty() {
    $("item").hidden = true;
    $("verdict").hidden = true;
    $("actions").hidden = true;
    closeCorrection();
    status(passed.size ? "Nothing left to review but the " + passed.size + " item(s) passed over; reload to see them again."
                       : "Nothing left to review.");
  }

  async function load() {
    busy = true;
    try {
      const response = await fetch(base + "/queue?limit=50", { credentials: "same-origin" });
      const body = await response.json();
      if (!response.ok) { status(body.detail || "could not load the queue", true); return; }
      queue = body.items.filter((e) => !passed.has(e.item_id) && !done.has(e.item_id));
      index = 0;
      $("queue-total").textContent = String(body.total);
      if (queue.length) render(queue[0]); else empty();
    } catch (e) {
      status("could not load the queue: " + e, true);
    } finally {
      busy = false;
    }
  }

  function advance() {
    closeCorrection();
    index += 1;
    if (index < queue.length) render(queue[index]); else load();
  }

  async function send(body) {
    const entry = current();
    if (!entry || busy) return false;
    busy = true;
    try {
      const response = await fetch(base + "/" + entry.item_id, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) {
        status("Not saved: " + (answer.detail || "request failed (HTTP " + response.status + ")"), true);
        return false;
      }
      done.add(entry.item_id);
      reviewed += 1;
      $("count-reviewed").textContent = String(reviewed);
      $("last-action").textContent = (body.action === "accept" ? "Accepted " : "Corrected to ") + show(answer.value) +
        " on item " + entry.external_id + ".";
      return true;
    } catch (e) {
      status("Not saved: " + e, true);
      return false;
    } finally {
      busy = false;
    }
  }

  async function accept() {
    if (await send({ action: "accept" })) advance();
  }

  function pick(i) {
    if (i < 0 || i >= labelButtons.length) return;
    picked = i;
    labelButtons.forEach((b, j) => b.classList.toggle("picked", j === i));
    if (evidenceInput) evidenceInput.focus();  // Enter there saves the form
  }

  function openCorrection() {
    if (!current()) return;
    correcting = true;
    picked = -1;
    labelButtons.forEach((b) => b.classList.remove("picked"));
    if (valueInput) valueInput.value = "";
    if (evidenceInput) evidenceInput.value = "";
    $("correct-form").hidden = false;
    if (valueInput) valueInput.focus();
    status("Correct: " + (labelButtons.length ? "pick a label with its digit, " : "type the value, ") +
           "Enter saves, Esc cancels.");
  }

  function closeCorrection() {
    correcting = false;
    $("correct-form").hidden = true;
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }

  function correctedValue() {
    if (labelButtons.length) {
      if (picked < 0) return undefined;
      const label = labelButtons[picked].dataset.value;
      return needsEvidence ? { verdict: label, evidence: evidenceInput ? evidenceInput.value : "" } : label;
    }
    const raw = valueInput ? valueInput.value.trim() : "";
    if (!raw) return undefined;
    try { return JSON.parse(raw); } catch (e) { return raw; }
  }

  async function saveCorrection() {
    const value = correctedValue();
    if (value === undefined) { status("Pick or type the corrected value first.", true); return; }
    if (await send({ action: "correct", value: value })) advance();
  }

  $("accept").addEventListener("click", accept);
  $("correct").addEventListener("click", openCorrection);
  $("next").addEventListener("click", () => { const e = current(); if (e) { passed.add(e.item_id); advance(); } });
  $("correct-cancel").addEventListener("click", () => { closeCorrection(); if (current()) render(current()); });
  $("correct-form").addEventListener("submit", (event) => { event.preventDefault(); saveCorrection(); });
  labelButtons.forEach((b, i) => b.addEventListener("click", () => pick(i)));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || busy) return;
    const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement;
    if (correcting) {
      if (event.key === "Escape") { event.preventDefault(); closeCorrection(); if (current()) render(current()); return; }
      if (typing) return;  // Enter in a field submits the form
      if (/^[1-9]$/.test(event.key)) { event.preventDefault(); pick(Number(event.key) - 1); return; }
      if (event.key === "Enter") { event.preventDefault(); saveCorrection(); }
      return;
    }
    if (typing || !current()) return;
    const key = event.key.toLowerCase();
    if (key === "a") { event.preventDefault(); accept(); }
    else if (key === "c") { event.preventDefault(); openCorrection(); }
    else if (key === "n" || event.key === "ArrowRight") {
      event.preventDefault();
      passed.add(current().item_id);
      advance();
    }
  });

  load();
})();
