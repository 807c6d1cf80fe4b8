// The job page: submits the form as JSON, refreshes the job list every second, and shows a banner
// while /api/status reports the broker or the database unavailable.
// DOM nodes are built with textContent only, so job inputs can never inject markup.
// Counts are written with thousands separators and kept on one line (class "count"), so a
// narrow column wraps the text around them, never inside a number.
"use strict";

const form = document.getElementById("job-form");
const message = document.getElementById("form-message");
const submitButton = document.getElementById("submit");
const tableBody = document.querySelector("#jobs tbody");
const refreshed = document.getElementById("refreshed");
const banner = document.getElementById("dependency-banner");
const REFRESH_MILLISECONDS = 1000;
// The server caches its dependency checks for 2 s; every 5 s is enough for a banner.
const STATUS_MILLISECONDS = 5000;

// What an outage of each dependency means for the person looking at the page.
const OUTAGE_TEXT = {
  broker: "The task queue is unavailable: new jobs cannot be submitted right now. " +
          "The job list keeps working.",
  database: "The database is unavailable: jobs cannot be listed or submitted right now. " +
            "Running jobs finish when it is back.",
};

const numbers = new Intl.NumberFormat(document.documentElement.lang || "en");

function count(value) {
  return value === null || value === undefined ? "" : numbers.format(value);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

// A cell of free text followed by a count that must not break: "text (1,234)".
function textWithCount(text, countText, className) {
  const td = cell(text + " ", className);
  const span = document.createElement("span");
  span.className = "count";
  span.textContent = "(" + countText + ")";
  td.appendChild(span);
  return td;
}

function seconds(value) {
  return value === null || value === undefined ? "" : value.toFixed(3) + " s";
}

function renderJobs(jobs) {
  const rows = jobs.map((job) => {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    tr.appendChild(cell(new Date(job.created_at).toLocaleTimeString()));
    tr.appendChild(cell(job.id.slice(0, 8), "mono id"));
    tr.appendChild(cell(job.queue));
    tr.appendChild(cell(job.status, "status status-" + job.status));
    tr.appendChild(cell(count(job.attempts)));
    tr.appendChild(cell(seconds(job.wait_seconds)));
    tr.appendChild(cell(seconds(job.run_seconds)));
    tr.appendChild(textWithCount(job.a_preview + " | " + job.b_preview,
                                 count(job.a_length) + "+" + count(job.b_length) + " chars",
                                 "mono inputs"));
    tr.appendChild(job.result
      ? textWithCount(JSON.stringify(job.result.substring), count(job.result.length),
                      "mono result")
      : cell(job.error || "", "mono result"));
    tr.appendChild(cell(job.worker || ""));
    return tr;
  });
  tableBody.replaceChildren(...rows);
}

async function refresh() {
  try {
    const response = await fetch("/api/jobs?limit=50", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const body = await response.json();
    renderJobs(body.jobs);
    refreshed.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    refreshed.textContent = "cannot refresh: " + error.message;
  } finally {
    setTimeout(refresh, REFRESH_MILLISECONDS);
  }
}

function showOutages(down) {
  banner.replaceChildren(...down.map((name) => {
    const line = document.createElement("div");
    line.dataset.dependency = name;
    line.textContent = OUTAGE_TEXT[name] || name + " is unavailable.";
    return line;
  }));
  banner.hidden = down.length === 0;
}

async function refreshStatus() {
  try {
    const response = await fetch("/api/status", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const body = await response.json();
    showOutages(Object.keys(body.dependencies).filter((name) => !body.dependencies[name].up));
  } catch (error) {
    // The web tier itself is unreachable: the job list says so ("cannot refresh").
  } finally {
    setTimeout(refreshStatus, STATUS_MILLISECONDS);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  submitButton.disabled = true;
  message.className = "";
  message.textContent = "submitting…";
  try {
    const response = await fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ a: form.elements.a.value, b: form.elements.b.value }),
    });
    const body = await response.json();
    if (response.status !== 202) throw new Error(body.error || "HTTP " + response.status);
    message.textContent = "job " + body.id.slice(0, 8) + " queued on " + body.queue;
  } catch (error) {
    message.className = "error";
    message.textContent = error.message;
  } finally {
    submitButton.disabled = false;
  }
});

refresh();
refreshStatus();
