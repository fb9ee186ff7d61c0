// The tutor's labeling page: lease an item, pick a label with the keyboard or mouse, submit.
// Item text is only ever set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var root = document.getElementById("labeler");
  if (!root) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var project = root.dataset.project;
  var base = "/api/v1/projects/" + encodeURIComponent(project);
  var isFactCheck = root.dataset.type === "fact_check";
  var isPairwise = root.dataset.type === "pairwise";
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#labels .label"));
  var statusEl = document.getElementById("status");
  var itemEl = document.getElementById("item");
  var submitBtn = document.getElementById("submit");
  var skipForm = document.getElementById("skip-form");
  var skipReason = document.getElementById("skip-reason");
  var evidence = document.getElementById("evidence");

  var lease = null;     // the lease being labeled, as the API gave it
  var picked = null;    // index of the picked label
  var busy = false;     // a request is on its way: keys wait
  var shownAt = 0;      // when the item was shown (performance.now())
  var timed = [];       // seconds spent on each item submitted during this visit

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function api(path) {
    return fetch(base + path, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json", "Accept": "application/json"},
      body: arguments.length > 1 ? JSON.stringify(arguments[1]) : null
    }).then(function (r) {
      if (r.status === 204) { return null; }
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var err = new Error(typeof body.detail === "string" ? body.detail : "request failed (" + r.status + ")");
          err.status = r.status;
          throw err;
        }
        return body;
      });
    });
  }

  function pick(index) {
    if (!lease || index < 0 || index >= buttons.length) { return; }
    picked = index;
    buttons.forEach(function (b, i) {
      b.classList.toggle("picked", i === index);
      b.setAttribute("aria-pressed", i === index ? "true" : "false");
    });
    submitBtn.disabled = false;
  }

  function clearPick() {
    picked = null;
    buttons.forEach(function (b) { b.classList.remove("picked"); b.setAttribute("aria-pressed", "false"); });
    submitBtn.disabled = true;
  }

  function field(data, name) {
    var v = data && Object.prototype.hasOwnProperty.call(data, name) ? data[name] : "";
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function show(next) {
    lease = next;
    clearPick();
    if (evidence) { evidence.value = ""; }
    if (!next) {
      itemEl.hidden = true;
      setStatus("Nothing left for you to label in this project. Come back later.");
      return;
    }
    var pair = document.getElementById("pair");
    var text = document.getElementById("item-text");
    if (isPairwise && next.data) {
      pair.hidden = false;
      text.textContent = next.text || "";
      document.getElementById("pair-prompt").textContent = field(next.data, root.dataset.promptField);
      document.getElementById("pair-a").textContent = field(next.data, root.dataset.aField);
      document.getElementById("pair-b").textContent = field(next.data, root.dataset.bField);
    } else {
      pair.hidden = true;
      text.textContent = next.text !== null && next.text !== undefined ? next.text : JSON.stringify(next.data);
    }
    document.getElementById("item-meta").textContent =
      "item " + next.external_id + " · " + next.domain + " · lease until " + new Date(next.expires_at).toLocaleTimeString();
    itemEl.hidden = false;
    itemEl.dataset.itemId = String(next.item_id);
    setStatus("Pick a label (1–" + buttons.length + "), then Enter.");
    shownAt = performance.now();
  }

  function next() {
    busy = true;
    setStatus("Fetching the next item…");
    return api("/work").then(show, function (err) {
      itemEl.hidden = true;
      lease = null;
      setStatus(err.message, true);
    }).then(function () { busy = false; });
  }

  function bump(id) {
    var el = document.getElementById(id);
    el.textContent = String(parseInt(el.textContent, 10) + 1);
  }

  function submit() {
    if (busy || !lease || picked === null) { return; }
    var label = buttons[picked].dataset.value;
    var value = isFactCheck ? {verdict: label, evidence: evidence ? evidence.value : ""} : label;
    var seconds = (performance.now() - shownAt) / 1000;
    busy = true;
    setStatus("Submitting…");
    api("/work/" + lease.lease + "/submit", {value: value}).then(function () {
      timed.push(seconds);
      var sum = timed.reduce(function (a, b) { return a + b; }, 0);
      document.getElementById("last-seconds").textContent = seconds.toFixed(1);
      document.getElementById("avg-seconds").textContent = (sum / timed.length).toFixed(1);
      bump("count-today");
      bump("count-total");
      busy = false;
      return next();
    }, function (err) {
      busy = false;
      setStatus(err.message, true);
    });
  }

  function openSkip() {
    if (busy || !lease) { return; }
    skipForm.hidden = false;
    skipReason.value = "";
    skipReason.focus();
  }

  function closeSkip() {
    skipForm.hidden = true;
    skipReason.blur();
  }

  skipForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (busy || !lease) { return; }
    var reason = skipReason.value.trim();
    if (!reason) { skipReason.focus(); return; }
    closeSkip();
    busy = true;
    api("/work/" + lease.lease + "/release").then(function () {
      busy = false;
      return next().then(function () { setStatus("Skipped (" + reason + "). " + statusEl.textContent); });
    }, function (err) {
      busy = false;
      setStatus(err.message, true);
    });
  });
  document.getElementById("skip-cancel").addEventListener("click", closeSkip);
  document.getElementById("skip").addEventListener("click", openSkip);
  submitBtn.addEventListener("click", submit);
  buttons.forEach(function (b, i) { b.addEventListener("click", function () { pick(i); }); });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var target = ev.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA");
    if (typing) {
      if (ev.key === "Escape") { closeSkip(); if (evidence) { evidence.blur(); } }
      return;  // Enter in the skip reason submits that form; other keys are text
    }
    if (/^[1-9]$/.test(ev.key)) {
      pick(parseInt(ev.key, 10) - 1);
      ev.preventDefault();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      submit();
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault();
      openSkip();
    } else if (ev.key === "u" || ev.key === "U") {
      ev.preventDefault();
      clearPick();
    }
  });

  next();
}());
