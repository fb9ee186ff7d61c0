// The tutor's labeling page: lease an item, answer it with the keyboard or mouse, submit.
// Handles every task type: classification, rating, pairwise, arena and fact_check (one choice by digit),
// multilabel (digits toggle), span (select text, a digit labels it) and free_text (a text area).
// Item text and data are only ever set with textContent (DOM nodes built here), never parsed as HTML.
(function () {
  "use strict";
  var root = document.getElementById("labeler");
  if (!root) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var base = "/api/v1/projects/" + encodeURIComponent(root.dataset.project);
  var schema = JSON.parse(root.dataset.schema || "{}");
  var type = schema.type;
  // An arena battle is a pairwise item with a fourth answer (both bad); its item id names the models,
  // so the page never shows it.
  var PAIR = type === "pairwise" || type === "arena";
  var SINGLE = type === "classification" || type === "rating" || PAIR || type === "fact_check";

  function $(id) { return document.getElementById(id); }
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#labels .label"));
  var values = buttons.map(function (b) { return b.dataset.value; });
  var statusEl = $("status");
  var itemEl = $("item");
  var textEl = $("item-text");
  var dataEl = $("item-data");
  var submitBtn = $("submit");
  var undoBtn = $("undo");
  var skipForm = $("skip-form");
  var skipReason = $("skip-reason");
  var evidence = $("evidence");
  var answer = $("answer");
  var spanList = $("span-list");

  var lease = null;     // the lease being answered, as the API gave it
  var picked = null;    // single choice: index of the picked button
  var chosen = [];      // multilabel: indices of the labels turned on
  var spans = [];       // span: {start, end, label}, offsets in code points of the item text, in the order added
  var chars = [];       // span: the item text split into code points
  var busy = false;     // a request is on its way: keys wait
  var shownAt = 0;      // when the item was shown (performance.now())
  var timed = [];       // seconds spent on each item submitted during this visit
  var lastDone = null;  // the lease id of the last submitted claim: what U takes back (one step only)
  var lastSeconds = 0;  // the seconds sent with it: an undone item's time on screen goes on from there
  var held = null;      // the lease shown when U was pressed; shown again once the undone item is answered

  // --- small helpers -----------------------------------------------------------------------------

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  // Every API error is {detail: "text", errors?: [...]}: detail alone says what went wrong.
  function errorText(body, status) {
    var d = body && body.detail;
    if (typeof d === "string") { return d; }
    return "request failed (" + status + ")";
  }

  function api(path, payload) {
    return fetch(base + path, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json", "Accept": "application/json"},
      body: payload === undefined ? null : JSON.stringify(payload)
    }).then(function (r) {
      if (r.status === 204) { return null; }
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var err = new Error(errorText(body, r.status));
          err.status = r.status;
          throw err;
        }
        return body;
      });
    });
  }

  function bump(id, delta) {
    var node = $(id);
    node.textContent = String(Math.max(0, (parseInt(node.textContent, 10) || 0) + delta));
  }

  // Lengths and offsets as the server counts them: code points, so an emoji is one character.
  function cpLength(s) { return Array.from(s).length; }

  // --- choices: single, multiple ------------------------------------------------------------------

  function paint() {
    buttons.forEach(function (b, i) {
      var on = type === "multilabel" ? chosen.indexOf(i) >= 0 : (SINGLE && i === picked);
      b.classList.toggle("picked", on);
      if (type !== "span") { b.setAttribute("aria-pressed", on ? "true" : "false"); }
    });
    submitBtn.disabled = !lease || (SINGLE && picked === null);
    undoBtn.disabled = busy || lastDone === null;
  }

  function pick(index) {
    if (!lease || index < 0 || index >= buttons.length) { return; }
    picked = index;
    paint();
    if (type === "fact_check") {
      setStatus("Verdict: " + values[index] + ". " + (schema.require_evidence ? "Write the evidence (E), then Enter."
                                                                          : "Add evidence (E) if you like, then Enter."));
    }
  }

  function toggle(index) {
    if (!lease || index < 0 || index >= buttons.length) { return; }
    var at = chosen.indexOf(index);
    if (at >= 0) {
      chosen.splice(at, 1);
    } else if (schema.max_labels && chosen.length >= schema.max_labels) {
      setStatus("At most " + schema.max_labels + " label" + (schema.max_labels === 1 ? "" : "s") +
                ": turn one off first.", true);
      return;
    } else {
      chosen.push(index);
    }
    paint();
    setStatus(chosen.length ? "Chosen: " + chosen.slice().sort(function (a, b) { return a - b; }).map(function (i) { return values[i]; }).join(", ") +
                              ". Enter submits." : "No label chosen. " + hint());
  }

  // --- spans --------------------------------------------------------------------------------------

  function labelIndex(label) { return Math.max(0, values.indexOf(label)); }

  function renderSpanText() {
    // The text as plain text nodes and <mark>s; the container's text stays exactly the item text,
    // so a selection's position in it is an offset into the item text.
    var cuts = [0, chars.length];
    spans.forEach(function (s) { cuts.push(s.start, s.end); });
    cuts = cuts.filter(function (c, i) { return cuts.indexOf(c) === i; }).sort(function (a, b) { return a - b; });
    textEl.textContent = "";
    for (var k = 0; k + 1 < cuts.length; k++) {
      var a = cuts[k], b = cuts[k + 1];
      var piece = chars.slice(a, b).join("");
      var over = spans.filter(function (s) { return s.start <= a && b <= s.end; });
      if (!over.length) {
        textEl.appendChild(document.createTextNode(piece));
        continue;
      }
      var mark = el("mark", "hl lab-" + (labelIndex(over[over.length - 1].label) % 8) + (over.length > 1 ? " overlap" : ""),
                    piece);
      mark.title = over.map(function (s) { return s.label; }).join(", ");
      textEl.appendChild(mark);
    }
  }

  function inOrder() {  // the spans by position, each with its index in `spans`
    return spans.map(function (s, i) { return {start: s.start, end: s.end, label: s.label, at: i}; })
      .sort(function (x, y) { return x.start - y.start || x.end - y.end || (x.label < y.label ? -1 : x.label > y.label ? 1 : 0); });
  }

  function renderSpanList() {
    spanList.textContent = "";
    inOrder().forEach(function (s) {
      var li = el("li", "span-row");
      li.appendChild(el("span", "tag lab-" + (labelIndex(s.label) % 8), s.label));
      li.appendChild(el("span", "excerpt", chars.slice(s.start, s.end).join("")));
      li.appendChild(el("span", "muted offsets", "[" + s.start + ", " + s.end + ")"));
      var rm = el("button", "remove", "×");
      rm.type = "button";
      rm.setAttribute("aria-label", "Remove span " + s.label + " “" + chars.slice(s.start, s.end).join("") + "”");
      rm.addEventListener("click", function () { removeSpan(s.at); });
      li.appendChild(rm);
      spanList.appendChild(li);
    });
    $("span-count").textContent = spans.length ? "(" + spans.length + ")" : "(none yet)";
  }

  function renderSpans() { renderSpanText(); renderSpanList(); }

  function utf16Offset(node, offset) {
    var r = document.createRange();
    r.setStart(textEl, 0);
    r.setEnd(node, offset);
    return r.toString().length;
  }

  function selected() {
    // The selection inside the item text as code-point offsets, surrounding white space left out.
    var sel = window.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) { return null; }
    var r = sel.getRangeAt(0);
    if (!textEl.contains(r.startContainer) || !textEl.contains(r.endContainer)) { return null; }
    var text = lease.text || "";
    var s = utf16Offset(r.startContainer, r.startOffset);
    var e = utf16Offset(r.endContainer, r.endOffset);
    while (s < e && /\s/.test(text.charAt(s))) { s++; }
    while (e > s && /\s/.test(text.charAt(e - 1))) { e--; }
    if (e <= s) { return null; }
    return {start: cpLength(text.slice(0, s)), end: cpLength(text.slice(0, e))};
  }

  function labelSelection(index) {
    if (!lease || index < 0 || index >= buttons.length) { return; }
    var at = selected();
    if (!at) { setStatus("Select some of the text with the mouse first, then press 1–" + buttons.length + ".", true); return; }
    var label = values[index];
    var dup = spans.some(function (s) { return s.start === at.start && s.end === at.end && s.label === label; });
    if (!dup) {
      spans.push({start: at.start, end: at.end, label: label});
    }
    window.getSelection().removeAllRanges();
    renderSpans();
    setStatus((dup ? "Already labeled: " : "Labeled “") + chars.slice(at.start, at.end).join("") + "” as " + label +
              (dup ? "." : "”.") + " Select more, or Enter to submit.");
  }

  function removeSpan(i) {
    if (i < 0 || i >= spans.length) { return; }
    var gone = spans.splice(i, 1)[0];
    renderSpans();
    setStatus("Removed “" + chars.slice(gone.start, gone.end).join("") + "” (" + gone.label + ").");
  }

  // --- the item -----------------------------------------------------------------------------------

  function renderValue(v) {
    if (typeof v === "string") { return el("div", "text", v); }
    if (Array.isArray(v) && v.every(function (x) { return x === null || typeof x !== "object"; })) {
      var ul = el("ul", "values");
      v.forEach(function (x) { ul.appendChild(el("li", null, typeof x === "string" ? x : JSON.stringify(x))); });
      return ul;
    }
    return el("pre", "json", JSON.stringify(v, null, 2));
  }

  function renderData(data) {
    if (!dataEl) { return; }
    dataEl.textContent = "";
    if (data === null || data === undefined) { return; }
    if (typeof data !== "object" || Array.isArray(data)) { data = {data: data}; }
    Object.keys(data).forEach(function (key) {
      var block = el("section", "field");
      block.dataset.field = key;
      block.appendChild(el("h3", null, key));
      block.appendChild(renderValue(data[key]));
      dataEl.appendChild(block);
    });
  }

  function hint() {
    var n = buttons.length;
    switch (type) {
      case "pairwise": return "Which response is better? 1 left, 2 right, 3 tie; then Enter.";
      case "arena": return "Which response is better? 1 left, 2 right, 3 tie, 4 both bad; then Enter.";
      case "multilabel": return "Turn labels on or off with 1–" + n + ", then Enter.";
      case "span": return "Select text with the mouse, then press 1–" + n + " to label it; Enter submits.";
      case "free_text": return "Write your answer; Ctrl+Enter submits.";
      case "fact_check": return "Pick a verdict (1–" + n + "), write the evidence (E), then Enter.";
      default: return "Pick a label (1–" + n + "), then Enter.";
    }
  }

  function preselect(prev) {
    if (prev === undefined || prev === null) { return; }
    if (SINGLE) {
      var v = type === "fact_check" && typeof prev === "object" ? prev.verdict : prev;
      var i = values.indexOf(String(v));
      if (i >= 0) { picked = i; }
      if (type === "fact_check" && evidence && typeof prev === "object" && typeof prev.evidence === "string") {
        evidence.value = prev.evidence;
      }
    } else if (type === "multilabel" && Array.isArray(prev)) {
      chosen = prev.map(function (x) { return values.indexOf(String(x)); }).filter(function (i) { return i >= 0; });
    } else if (type === "span" && Array.isArray(prev)) {
      spans = prev.filter(function (s) { return s && typeof s.start === "number" && typeof s.end === "number"; })
        .map(function (s) { return {start: s.start, end: s.end, label: String(s.label)}; });
    } else if (type === "free_text" && typeof prev === "string") {
      answer.value = prev;
    }
  }

  function show(next, undone) {
    lease = next;
    picked = null;
    chosen = [];
    spans = [];
    if (evidence) { evidence.value = ""; }
    if (answer) { answer.value = ""; }
    $("undo-note").hidden = !undone;
    if (!next) {
      itemEl.hidden = true;
      delete itemEl.dataset.lease;
      paint();
      setStatus("Nothing left for you to label in this project. Come back later.");
      return;
    }
    if (PAIR) {
      var pair = next.pair || {};
      $("pair-prompt").textContent = pair.prompt !== undefined && pair.prompt !== null ? String(pair.prompt) : (next.text || "");
      $("pair-left").textContent = pair.left !== undefined && pair.left !== null ? String(pair.left) : "";
      $("pair-right").textContent = pair.right !== undefined && pair.right !== null ? String(pair.right) : "";
    } else {
      var text = typeof next.text === "string" ? next.text : "";
      chars = Array.from(text);
      textEl.textContent = text;
      textEl.hidden = text === "" && next.data !== null && next.data !== undefined;
      renderData(next.data);
    }
    if (undone) { preselect(next.previous); }
    if (type === "span") { renderSpans(); }
    if (type === "free_text") { count(); }
    var meta = next.external_id === null || next.external_id === undefined ? [] : ["item " + next.external_id];
    if (next.domain) { meta.push(next.domain); }
    if (next.expires_at) { meta.push("lease until " + new Date(next.expires_at).toLocaleTimeString()); }
    $("item-meta").textContent = meta.join(" · ");
    itemEl.hidden = false;
    itemEl.dataset.itemId = String(next.item_id);
    itemEl.dataset.lease = String(next.lease);
    paint();
    setStatus((undone ? "Undone: your earlier answer is shown; change it and submit again. " : "") + hint());
    shownAt = performance.now();
    var focused = document.activeElement;
    if (focused && focused !== document.body && focused !== answer && focused.blur) { focused.blur(); }  // keys act on the new item
    if (answer) { answer.focus(); }
  }

  function next() {
    busy = true;
    paint();
    setStatus("Fetching the next item…");
    return api("/work").then(function (got) { busy = false; show(got, false); }, function (err) {
      busy = false;
      itemEl.hidden = true;
      lease = null;
      paint();
      setStatus(err.message, true);
    });
  }

  function onScreen() {
    return (lease && lease.spent ? lease.spent : 0) + (performance.now() - shownAt) / 1000;
  }

  // --- answering ----------------------------------------------------------------------------------

  function count() {
    var n = cpLength(answer.value.trim());
    var out = n < schema.min_length ? " · " + (schema.min_length - n) + " more needed"
      : n > schema.max_length ? " · " + (n - schema.max_length) + " too many" : "";
    $("answer-count").textContent = n + " character" + (n === 1 ? "" : "s") + " · between " + schema.min_length +
      " and " + schema.max_length + out;
  }

  // The value to submit, or a string that says why there is none yet.
  function answerValue() {
    if (SINGLE) {
      if (picked === null) { return {problem: "Pick " + (type === "fact_check" ? "a verdict" : "an answer") + " first (1–" + buttons.length + ")."}; }
      if (type !== "fact_check") { return {value: values[picked]}; }
      var ev = evidence ? evidence.value : "";
      if (schema.require_evidence && !ev.trim()) {
        return {problem: "Evidence is required: write what supports your verdict (E), then submit."};
      }
      return {value: {verdict: values[picked], evidence: ev}};
    }
    if (type === "multilabel") {
      var min = schema.min_labels || 0;
      if (chosen.length < min) { return {problem: "Choose at least " + min + " label" + (min === 1 ? "" : "s") + " first."}; }
      if (schema.max_labels && chosen.length > schema.max_labels) { return {problem: "Choose at most " + schema.max_labels + " labels."}; }
      return {value: values.filter(function (v, i) { return chosen.indexOf(i) >= 0; })};
    }
    if (type === "span") {
      return {value: inOrder().map(function (s) { return {start: s.start, end: s.end, label: s.label}; })};
    }
    if (type === "free_text") {
      var n = cpLength(answer.value.trim());
      if (n < schema.min_length) { return {problem: "The answer is too short: at least " + schema.min_length + " characters."}; }
      if (n > schema.max_length) { return {problem: "The answer is too long: at most " + schema.max_length + " characters."}; }
      return {value: answer.value};
    }
    return {problem: "This page cannot answer a " + type + " task."};
  }

  function submit() {
    if (busy || !lease) { return; }
    var got = answerValue();
    if (got.problem) {
      setStatus(got.problem, true);
      if (type === "fact_check" && picked !== null && evidence) { evidence.focus(); }
      return;
    }
    var seconds = Math.round(onScreen() * 1000) / 1000;
    var done = lease;
    busy = true;
    paint();
    setStatus("Submitting…");
    // With no item held back by an undo, the answer brings the next lease too (one round trip).
    var ask = !held;
    api("/work/" + done.lease + "/submit", {value: got.value, seconds: seconds, next: ask}).then(function (res) {
      timed.push(seconds);
      var sum = timed.reduce(function (a, b) { return a + b; }, 0);
      $("last-seconds").textContent = seconds.toFixed(1);
      $("avg-seconds").textContent = (sum / timed.length).toFixed(1);
      bump("count-today", 1);
      bump("count-total", 1);
      lastDone = done.lease;
      lastSeconds = seconds;
      busy = false;
      if (held) {
        var back = held;
        held = null;
        show(back, false);
        return null;
      }
      if (!ask || !res || !("next" in res)) { return next(); }
      show(res.next, false);
      if (res.next_error) { setStatus(res.next_error, true); }
      return null;
    }, function (err) {
      busy = false;
      paint();
      setStatus(err.message, true);
    });
  }

  function undo() {
    if (busy) { return; }
    if (lastDone === null) {
      setStatus("Nothing to undo: U takes back only your last submitted item, once.", true);
      return;
    }
    busy = true;
    paint();
    setStatus("Undoing…");
    api("/work/" + lastDone + "/undo", {}).then(function (back) {
      busy = false;
      lastDone = null;
      bump("count-today", -1);
      bump("count-total", -1);
      if (lease && !held) {  // still leased to this tutor: shown again once the undone item is answered
        lease.spent = onScreen();
        held = lease;
      }
      if (back) { back.spent = lastSeconds; }
      timed.pop();  // its time is counted again, in full, when it is answered again
      show(back, true);
    }, function (err) {
      busy = false;
      if (err.status >= 400 && err.status < 500) { lastDone = null; }
      paint();
      setStatus("Cannot undo: " + err.message, true);
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
    if (!reason) { setStatus("Say why you skip this item.", true); skipReason.focus(); return; }
    closeSkip();
    busy = true;
    paint();
    var gone = lease;
    api("/work/" + gone.lease + "/release", {reason: reason}).then(function () {
      busy = false;
      var after;
      if (held) {
        var back = held;
        held = null;
        show(back, false);
        after = Promise.resolve();
      } else {
        after = next();
      }
      return after.then(function () { setStatus("Skipped (" + reason + "). " + statusEl.textContent, statusEl.classList.contains("error")); });
    }, function (err) {
      busy = false;
      paint();
      setStatus(err.message, true);
    });
  });
  $("skip-cancel").addEventListener("click", closeSkip);
  $("skip").addEventListener("click", openSkip);
  submitBtn.addEventListener("click", submit);
  undoBtn.addEventListener("click", undo);

  function choose(index) {
    if (type === "multilabel") { toggle(index); } else if (type === "span") { labelSelection(index); } else { pick(index); }
  }

  buttons.forEach(function (b, i) {
    if (type === "span") {  // keep the text selection: a click on a label must not clear it
      b.addEventListener("mousedown", function (ev) { ev.preventDefault(); });
    }
    b.addEventListener("click", function () { choose(i); });
  });
  function calm() {  // typing answers an error message about the text: back to the hint
    if (statusEl.classList.contains("error") && lease && !busy) { setStatus(hint()); }
  }
  if (answer) { answer.addEventListener("input", function () { count(); calm(); }); }
  if (evidence) { evidence.addEventListener("input", calm); }

  document.addEventListener("keydown", function (ev) {
    var target = ev.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA");
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && !ev.altKey && target !== skipReason) {
      ev.preventDefault();
      submit();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (typing) {
      if (ev.key === "Escape") {
        if (target === skipReason) { closeSkip(); } else { target.blur(); }
      }
      return;  // Enter in the skip reason submits that form, in a text area it is a new line; other keys are text
    }
    if (ev.key === "Escape" && !skipForm.hidden) {
      closeSkip();
    } else if (/^[1-9]$/.test(ev.key)) {
      ev.preventDefault();
      choose(parseInt(ev.key, 10) - 1);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      submit();
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault();
      openSkip();
    } else if (ev.key === "u" || ev.key === "U") {
      ev.preventDefault();
      undo();
    } else if (ev.key === "Backspace" && type === "span") {
      ev.preventDefault();
      removeSpan(spans.length - 1);
    } else if ((ev.key === "e" || ev.key === "E") && evidence && lease) {
      ev.preventDefault();
      evidence.focus();
    } else if ((ev.key === "t" || ev.key === "T") && answer && lease) {
      ev.preventDefault();
      answer.focus();
    }
  });

  paint();
  next();
}());
