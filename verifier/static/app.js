// The compliance dashboard: overview (map, chips, alerts, fleet health) and a chip page at
// #/chip/<id>. Plain ES modules, no build step; everything it loads comes from the verifier.

import { Api, ApiError, clearToken, setToken, takeToken } from "./api.js";
import { WorldMap } from "./map.js";
import { OperationsPanel } from "./ops.js";

// c in vacuum, km per millisecond of round trip, halved for one way: the proof-tier bound the
// verifier uses (1 ms RTT ≤ 149.9 km).
const KM_PER_RTT_MS = 299_792.458 / 1000 / 2;
const REFRESH_INTERVAL_MS = 10_000;
const ALERT_PAGES = 5;
const VERDICT_PAGES = 5;
const FLEET_PAGES = 20; // the map and lists show at most 20,000 chips (docs/deploy.md)
const WRITE_ROLES = new Set(["admin", "operator"]);

const $ = (selector) => document.querySelector(selector);

const state = {
  api: null,
  vocabulary: null, // chip states and alert types, as the verifier defines them (/v1/vocabulary)
  me: null,
  chips: [],
  landmarks: [],
  alerts: new Map(),
  reasons: new Map(),
  stats: null,
  previousStats: null,
  route: { kind: "overview" },
  chipPage: null,
  stream: null,
  refreshTimer: null,
  alertsShown: null, // what the alert list was last built from
};

function make(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

function formatTime(unixNs) {
  if (unixNs === null || unixNs === undefined) return "—";
  return new Date(unixNs / 1e6).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function verdictLabel(verdict) {
  return make("span", { text: verdict, cls: `verdict-label verdict-${verdict}` });
}

// How far the chip's key can be trusted (docs/protocol.md, key provenance), said plainly.
const KEY_PROTECTION_TEXT = {
  software: "software key (the host owner could copy it)",
  "tee-bound": "TEE-bound key",
  "gpu-attested": "GPU-attested key",
};

function keyProtectionText(level) {
  return KEY_PROTECTION_TEXT[level] ?? `unknown key protection (${level})`;
}

// A verdict with what its key adds: "software key" on anything a software key earned, and the
// reason when the policy held a round back because the key was below its minimum.
function verdictWithKey(verdict) {
  const parts = [verdictLabel(verdict.verdict)];
  if (verdict.reason_code === "untrusted_key") {
    parts.push(make("span", { cls: "key-note untrusted-key", text: ` untrusted key: ${verdict.key_protection}` }));
  } else if (verdict.key_protection === "software" && verdict.verdict !== "dark") {
    parts.push(make("span", { cls: "key-note software-key", text: " software key" }));
  }
  return make("span", { cls: "verdict-with-key" }, parts);
}

// Licence entries are ISO alpha-3 codes or GeoJSON objects (custom regions).
function licenceEntries(licence, key) {
  return Array.isArray(licence?.[key]) ? licence[key] : [];
}

function describeLicenceEntry(entry) {
  if (typeof entry === "string") return entry;
  return entry?.properties?.name ?? `custom ${entry?.type ?? "region"}`;
}

function describeLicence(licence) {
  const allowed = licenceEntries(licence, "allowed").map(describeLicenceEntry).join(", ") || "—";
  const prohibited = licenceEntries(licence, "prohibited").map(describeLicenceEntry).join(", ");
  return prohibited ? `${allowed}; not ${prohibited}` : allowed;
}

function declaredSiteText(site) {
  if (typeof site?.lat_deg !== "number" || typeof site?.lon_deg !== "number") return "—";
  return `${site.lat_deg.toFixed(4)}, ${site.lon_deg.toFixed(4)}`;
}

function chipCountries(chip) {
  return licenceEntries(chip.licence, "allowed").filter((entry) => typeof entry === "string");
}

// The map wants a chip's latest sound region and point estimate, taken from its last verdict.
function mapChip(chip, verdict) {
  // Assessment.to_json() gives the estimate as {"lat", "lon"} in degrees, or null.
  const assessment = verdict?.assessment ?? null;
  const estimate = assessment?.estimate ?? null;
  return {
    chip_id: chip.chip_id,
    verdict: chip.state,
    sound_region: assessment?.sound_region ?? null,
    estimate: estimate ? { lat_deg: estimate.lat, lon_deg: estimate.lon } : null,
  };
}

// ---- filters --------------------------------------------------------------------------------

function filterValues() {
  return {
    search: $("#search").value.trim().toLowerCase(),
    verdict: $("#filter-verdict").value,
    owner: $("#filter-owner").value,
    country: $("#filter-country").value,
    zone: $("#filter-zone").value,
    group: $("#filter-group").value,
    alertType: $("#filter-alert-type").value,
    alertStatus: $("#filter-alert-status").value,
  };
}

function chipFilterActive(filters) {
  return Boolean(filters.search || filters.verdict || filters.owner || filters.country ||
    filters.zone || filters.group);
}

function chipMatches(chip, filters) {
  return (
    (!filters.search || chip.chip_id.toLowerCase().includes(filters.search)) &&
    (!filters.verdict || chip.state === filters.verdict) &&
    (!filters.owner || chip.owner === filters.owner) &&
    (!filters.country || chipCountries(chip).includes(filters.country)) &&
    (!filters.zone || chip.zone_id === filters.zone) &&
    (!filters.group || (chip.groups ?? []).includes(filters.group))
  );
}

// Alerts follow the chip filters: with any chip filter set, only alerts about matching chips
// remain (landmark alerts reappear when the chip filters are cleared).
function alertMatches(alert, filters, matchingChipIds) {
  if (filters.alertType && alert.type !== filters.alertType) return false;
  if (filters.alertStatus && alert.status !== filters.alertStatus) return false;
  if (!chipFilterActive(filters)) return true;
  return alert.subject_kind === "chip" && matchingChipIds.has(alert.subject_id);
}

function setOptions(select, values) {
  const current = select.value;
  select.replaceChildren(make("option", { text: "any", attrs: { value: "" } }));
  for (const value of values) select.append(make("option", { text: value, attrs: { value } }));
  select.value = values.includes(current) ? current : "";
}

function refreshFilterOptions() {
  setOptions($("#filter-owner"), [...new Set(state.chips.map((chip) => chip.owner))].sort());
  setOptions($("#filter-country"), [...new Set(state.chips.flatMap(chipCountries))].sort());
  setOptions($("#filter-zone"), [...new Set(state.chips.map((c) => c.zone_id).filter(Boolean))].sort());
  setOptions($("#filter-group"), [...new Set(state.chips.flatMap((c) => c.groups ?? []))].sort());
}

// ---- rendering ------------------------------------------------------------------------------

function renderOverview() {
  const filters = filterValues();
  const chips = state.chips.filter((chip) => chipMatches(chip, filters));
  const tbody = $("#chips tbody");
  tbody.replaceChildren(
    ...chips.map((chip) =>
      make("tr", { cls: "chip-row", attrs: { "data-chip-id": chip.chip_id } }, [
        make("td", {}, [make("a", { text: chip.chip_id, attrs: { href: `#/chip/${chip.chip_id}` } })]),
        make("td", { text: chip.owner }),
        make("td", {}, [verdictLabel(chip.state)]),
        make("td", { text: describeLicence(chip.licence) }),
        make("td", { text: formatTime(chip.last_verdict?.created_unix_ns) }),
      ]),
    ),
  );
  $("#chip-count").textContent = `${chips.length} of ${state.chips.length}`;
  if (state.route.kind === "overview") {
    state.map.setChips(chips.map((chip) => mapChip(chip, chip.last_verdict)));
    state.map.setLicence(
      [...new Set(chips.flatMap((chip) => licenceEntries(chip.licence, "allowed")))],
      [...new Set(chips.flatMap((chip) => licenceEntries(chip.licence, "prohibited")))],
    );
  }
  renderAlerts(new Set(chips.map((chip) => chip.chip_id)));
}

function alertActions(alert) {
  if (!WRITE_ROLES.has(state.me?.role) || alert.status === "resolved") return [];
  const reason = make("input", {
    cls: "action-reason",
    attrs: { type: "text", placeholder: "reason", "aria-label": `reason for alert ${alert.alert_id}` },
  });
  // The list re-renders on every refresh and stream event; keep what the officer is typing.
  reason.value = state.reasons.get(alert.alert_id) ?? "";
  reason.addEventListener("input", () => state.reasons.set(alert.alert_id, reason.value));
  const buttons = [];
  if (alert.status === "open") {
    buttons.push(make("button", { text: "Acknowledge", cls: "ack", attrs: { type: "button" } }));
  }
  buttons.push(make("button", { text: "Resolve", cls: "resolve", attrs: { type: "button" } }));
  for (const button of buttons) {
    const action = button.classList.contains("ack") ? "ack" : "resolve";
    button.addEventListener("click", () => actOnAlert(alert.alert_id, action, reason.value.trim()));
  }
  return [make("div", { cls: "alert-actions" }, [reason, ...buttons])];
}

function renderAlerts(matchingChipIds) {
  const filters = filterValues();
  const alerts = [...state.alerts.values()]
    .filter((alert) => alertMatches(alert, filters, matchingChipIds))
    .sort((a, b) => b.updated_unix_ns - a.updated_unix_ns);
  const list = $("#alerts");
  // Rebuild the list only when what it shows changed: a rebuild under the officer's cursor
  // would swap the button or reason field they are using for a new one.
  const shown = JSON.stringify([
    state.me?.role ?? null,
    alerts.map((alert) => [alert.alert_id, alert.status, alert.updated_unix_ns, alert.muted_by_rule]),
  ]);
  if (shown !== state.alertsShown) {
    state.alertsShown = shown;
    replaceAlertItems(list, alerts);
  }
  const open = [...state.alerts.values()].filter((alert) => alert.status === "open").length;
  $("#alert-count").textContent = `${alerts.length} shown, ${open} open`;
}

function replaceAlertItems(list, alerts) {
  const fresh = new Set([...list.querySelectorAll("li.fresh")].map((li) => li.dataset.alertId));
  list.replaceChildren(
    ...alerts.map((alert) => {
      const subject =
        alert.subject_kind === "chip"
          ? make("a", { text: alert.subject_id, attrs: { href: `#/chip/${alert.subject_id}` } })
          : make("span", { text: `${alert.subject_kind} ${alert.subject_id}` });
      const handledBy =
        alert.status === "resolved"
          ? `resolved by ${alert.resolved_by}: ${alert.resolved_reason}`
          : alert.status === "acknowledged"
            ? `acknowledged by ${alert.acknowledged_by}: ${alert.acknowledged_reason}`
            : "";
      const item = make(
        "li",
        {
          cls: `severity-${alert.severity} status-${alert.status}`,
          attrs: {
            "data-alert-id": alert.alert_id,
            "data-status": alert.status,
            "data-type": alert.type,
            "data-subject-id": alert.subject_id,
          },
        },
        [
          make("div", { cls: "alert-head" }, [
            make("span", { text: alert.type, cls: "alert-type" }),
            subject,
            make("span", { text: alert.severity, cls: "badge-text muted" }),
            make("span", { text: alert.status, cls: "alert-status" }),
            // Muted: recorded and logged as evidence, but no one was notified (docs/operations.md).
            ...(alert.muted_by_rule
              ? [make("span", { text: "muted", cls: "muted-badge", attrs: { title: `mute rule ${alert.muted_by_rule}` } })]
              : []),
          ]),
          make("div", { text: alert.message }),
          make("div", { text: `${formatTime(alert.updated_unix_ns)} ${handledBy}`, cls: "muted" }),
          ...alertActions(alert),
        ],
      );
      if (fresh.has(String(alert.alert_id))) item.classList.add("fresh");
      return item;
    }),
  );
}

// The audit's `suspect` becomes a warning after 2 consecutive mesh windows (docs/geo.md).
function probablyMisplaced(landmark) {
  return landmark.audit?.status === "suspect" && (landmark.audit.suspect_windows ?? 0) >= 2;
}

function renderHealth() {
  const up = state.landmarks.filter((landmark) => landmark.health === "alive");
  const down = state.landmarks.filter((landmark) => landmark.health !== "alive");
  $("#landmark-summary").textContent =
    `Landmarks: ${up.length} up, ${down.length} down or unknown (of ${state.landmarks.length})`;
  $("#landmark-list").replaceChildren(
    ...state.landmarks.map((landmark) =>
      make("li", {
        text:
          `${landmark.health === "alive" ? "▲" : "▽"} ${landmark.landmark_id} · ${landmark.health}` +
          (probablyMisplaced(landmark) ? " · probably misplaced (warning)" : ""),
        attrs: {
          "data-landmark-id": landmark.landmark_id,
          "data-health": landmark.health,
          "data-audit": landmark.audit?.status ?? "unknown",
        },
      }),
    ),
  );
  state.map.setLandmarks(
    state.landmarks.map((landmark) => ({ ...landmark, up: landmark.health === "alive" })),
  );
  const stats = state.stats;
  if (!stats) return;
  let rate = "measuring…";
  if (state.previousStats) {
    const minutes = (stats.at_ms - state.previousStats.at_ms) / 60_000;
    const accepted = stats.measurements_accepted_total - state.previousStats.measurements_accepted_total;
    if (minutes > 0) rate = `${(accepted / minutes).toFixed(1)} / min`;
  }
  $("#measurement-rate").textContent =
    `Measurements accepted: ${stats.measurements_accepted_total} (${rate}); ` +
    `batches: ${stats.batches_total}; open alerts: ${stats.open_alerts}`;
  const reasons = Object.entries(stats.measurements_rejected_by_reason).sort((a, b) => b[1] - a[1]);
  $("#rejections tbody").replaceChildren(
    ...(reasons.length
      ? reasons.map(([reason, count]) =>
          make("tr", { attrs: { "data-reason": reason } }, [
            make("td", { text: reason }),
            make("td", { text: String(count) }),
          ]),
        )
      : [make("tr", {}, [make("td", { text: "none", cls: "muted" }), make("td", { text: "0" })])]),
  );
}

function renderTimeline(verdicts) {
  const svg = $("#verdict-timeline");
  svg.replaceChildren();
  if (!verdicts.length) return;
  const ordered = [...verdicts].sort((a, b) => a.created_unix_ns - b.created_unix_ns);
  const first = ordered[0].created_unix_ns;
  const span = Math.max(ordered[ordered.length - 1].created_unix_ns - first, 1);
  svg.setAttribute("viewBox", "0 0 1000 28");
  svg.setAttribute("preserveAspectRatio", "none");
  ordered.forEach((verdict, index) => {
    const next = ordered[index + 1]?.created_unix_ns ?? first + span;
    const x = ordered.length === 1 ? 0 : ((verdict.created_unix_ns - first) / span) * 1000;
    const width = ordered.length === 1 ? 1000 : Math.max(((next - verdict.created_unix_ns) / span) * 1000, 3);
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", String(x));
    rect.setAttribute("y", "4");
    rect.setAttribute("width", String(width));
    rect.setAttribute("height", "20");
    rect.setAttribute("class", `chip-marker verdict-${verdict.verdict}`);
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${formatTime(verdict.created_unix_ns)} ${verdict.verdict}`;
    rect.append(title);
    svg.append(rect);
  });
}

function renderChipPage() {
  const { chip, verdicts, gpu } = state.chipPage;
  const latest = verdicts[0] ?? null;
  $("#chip-title").textContent = chip.chip_id;
  const facts = [
    ["state", verdictLabel(chip.state)],
    ["since", formatTime(chip.state_since_unix_ns)],
    ["owner", chip.owner],
    ["model / serial", `${chip.model} / ${chip.serial}`],
    ["policy", chip.policy],
    ["key protection", keyProtectionText(chip.key_protection)],
    ["GPU attestation", gpuAttestationText(gpu)],
    ["licensed", licenceEntries(chip.licence, "allowed").map(describeLicenceEntry).join(", ") || "—"],
    ["prohibited", licenceEntries(chip.licence, "prohibited").map(describeLicenceEntry).join(", ") || "—"],
    ["border tolerance", `${chip.licence?.tolerance_km ?? 0} km`],
    ["sea", chip.licence?.sea === "excluded" ? "excluded (strict)" : "neutral"],
    ["declared site", declaredSiteText(chip.licence?.site)],
    ["last response", formatTime(chip.last_response_unix_ns)],
  ];
  $("#chip-facts").replaceChildren(
    ...facts.flatMap(([key, value]) => [
      make("dt", { text: key }),
      typeof value === "string" ? make("dd", { text: value }) : make("dd", {}, [value]),
    ]),
  );
  renderTimeline(verdicts);
  $("#verdict-history tbody").replaceChildren(
    ...verdicts.map((verdict) =>
      make("tr", { attrs: { "data-verdict-id": verdict.verdict_id } }, [
        make("td", { text: formatTime(verdict.created_unix_ns) }),
        make("td", {}, [verdictWithKey(verdict)]),
        make("td", {
          text: verdict.assessment ? Math.round(verdict.assessment.sound_area_km2).toLocaleString("en") : "—",
        }),
        make("td", {
          text:
            typeof verdict.assessment?.inside_fraction === "number"
              ? `${(verdict.assessment.inside_fraction * 100).toFixed(0)}%`
              : "—",
        }),
      ]),
    ),
  );
  $("#latest-rtts tbody").replaceChildren(
    ...(latest?.landmarks ?? []).map((landmark) =>
      make("tr", { attrs: { "data-landmark-id": landmark.landmark_id } }, [
        make("td", { text: landmark.landmark_id }),
        make("td", { text: landmark.rtt_ms.toFixed(3) }),
        make("td", { text: (landmark.rtt_ms * KM_PER_RTT_MS).toFixed(0) }),
      ]),
    ),
  );
  $("#download-evidence").disabled = latest === null;
  renderChipLocation();

  const drawn = mapChip(chip, latest);
  state.map.setChips([drawn]);
  const licence = latest?.licence ?? chip.licence;
  state.map.setLicence(licenceEntries(licence, "allowed"), licenceEntries(licence, "prohibited"));
  const used = new Set((latest?.landmarks ?? []).map((landmark) => landmark.landmark_id));
  for (const marker of document.querySelectorAll(".landmark-marker")) {
    marker.classList.toggle("used", used.has(marker.dataset.landmarkId));
  }
  const focus = [drawn.sound_region].filter(Boolean);
  if (drawn.estimate) {
    focus.push({ type: "Point", coordinates: [drawn.estimate.lon_deg, drawn.estimate.lat_deg] });
  }
  if (focus.length) state.map.fitGeometries(focus);
}

// The chip's unresolved alerts (the location alerts among them: docs/verifier.md), its learned
// RTT baseline, and (for an admin) its declared site.
function renderChipLocation() {
  const { chip, baseline } = state.chipPage;
  const alerts = [...state.alerts.values()].filter(
    (alert) =>
      alert.subject_kind === "chip" &&
      alert.subject_id === chip.chip_id &&
      alert.status !== "resolved",
  );
  $("#chip-alerts").replaceChildren(
    ...(alerts.length
      ? alerts.map((alert) =>
          make("li", {
            cls: `severity-${alert.severity}`,
            attrs: { "data-type": alert.type, "data-alert-id": alert.alert_id },
            text: `${alert.type}: ${alert.message}`,
          }),
        )
      : [make("li", { cls: "muted", text: "no unresolved alert" })]),
  );
  const needed = baseline?.baseline_rounds ?? 0;
  $("#rtt-baseline tbody").replaceChildren(
    ...(baseline?.items ?? []).map((row) =>
      make("tr", { attrs: { "data-landmark-id": row.landmark_id } }, [
        make("td", { text: row.landmark_id }),
        make("td", { text: row.best_rtt_ms.toFixed(3) }),
        make("td", { text: row.rounds >= needed ? String(row.rounds) : `${row.rounds} (learning, ${needed} needed)` }),
      ]),
    ),
  );
  $("#site-form").hidden = state.me?.role !== "admin";
}

async function changeSite(remove) {
  const chipId = state.chipPage.chip.chip_id;
  const path = `/v1/chips/${encodeURIComponent(chipId)}/site`;
  const error = $("#site-error");
  const lat = $("#site-lat").value.trim();
  const lon = $("#site-lon").value.trim();
  if (!remove && (lat === "" || lon === "")) {
    error.textContent = "Give the site's latitude and longitude in degrees.";
    return;
  }
  try {
    if (remove) await state.api.delete(path);
    else await state.api.put(path, { lat_deg: Number(lat), lon_deg: Number(lon) });
    error.textContent = "";
    await showChip(chipId);
  } catch (caught) {
    if (!(caught instanceof ApiError)) throw caught;
    error.textContent = `Refused (${caught.status}): ${caught.message}`;
  }
}

function downloadEvidence() {
  const { chip, verdicts } = state.chipPage;
  const latest = verdicts[0];
  const evidence = { chip, verdict: latest, exported_unix_ms: Date.now() };
  const blob = new Blob([JSON.stringify(evidence, null, 2)], { type: "application/json" });
  const link = make("a", {
    attrs: { href: URL.createObjectURL(blob), download: `evidence-${chip.chip_id}-${latest.verdict_id}.json` },
  });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// ---- data -----------------------------------------------------------------------------------

async function loadFleet() {
  const [chips, landmarks, stats] = await Promise.all([
    state.api.getAll("/v1/chips?limit=1000", FLEET_PAGES),
    state.api.getAll("/v1/landmarks?limit=1000", FLEET_PAGES),
    state.api.get("/v1/stats"),
  ]);
  state.chips = chips;
  state.landmarks = landmarks;
  state.previousStats = state.stats;
  state.stats = { ...stats, at_ms: Date.now() };
  refreshFilterOptions();
  renderHealth();
  renderOverview();
  $("#map-status").textContent = `updated ${new Date().toISOString().slice(11, 19)}Z`;
}

async function loadAlerts() {
  const items = await state.api.getAll("/v1/alerts?limit=200", ALERT_PAGES);
  state.alerts = new Map(items.map((alert) => [alert.alert_id, alert]));
}

let fleetReload = null;
function scheduleFleetReload() {
  // A burst of alerts should cost one reload of the fleet, not one each.
  clearTimeout(fleetReload);
  fleetReload = setTimeout(() => loadFleet().catch(showLoadError), 500);
}

function upsertAlert(alert) {
  const isNew = !state.alerts.has(alert.alert_id);
  state.alerts.set(alert.alert_id, alert);
  renderOverview();
  if (state.route.kind === "chip" && state.chipPage?.chip.chip_id === alert.subject_id) renderChipLocation();
  if (isNew) document.querySelector(`#alerts li[data-alert-id="${alert.alert_id}"]`)?.classList.add("fresh");
}

function openStream() {
  const badge = $("#stream-state");
  const stream = state.api.alertStream();
  stream.onopen = () => {
    badge.textContent = "stream: live";
    badge.className = "badge live";
  };
  stream.onerror = () => {
    badge.textContent = "stream: reconnecting";
    badge.className = "badge down";
  };
  stream.onmessage = (event) => {
    upsertAlert(JSON.parse(event.data));
    scheduleFleetReload();
  };
  state.stream = stream;
  // Release the long-lived connection as the page goes, so the browser's per-host connection
  // pool is free for the next page at once.
  window.addEventListener("pagehide", () => stream.close());
}

async function actOnAlert(alertId, action, reason) {
  const error = $("#alert-error");
  if (!reason) {
    error.textContent = `Give a reason to ${action === "ack" ? "acknowledge" : "resolve"} alert ${alertId}.`;
    return;
  }
  try {
    upsertAlert(await state.api.post(`/v1/alerts/${alertId}/${action}`, { reason }));
    error.textContent = "";
  } catch (caught) {
    if (!(caught instanceof ApiError)) throw caught;
    error.textContent =
      caught.status === 403
        ? `Refused: this token (${state.me.role}) may not change alerts.`
        : `Could not ${action} alert ${alertId}: ${caught.message}`;
  }
}

async function showChip(chipId) {
  const [chip, verdicts, gpu, baseline] = await Promise.all([
    state.api.get(`/v1/chips/${encodeURIComponent(chipId)}`),
    state.api.getAll(`/v1/chips/${encodeURIComponent(chipId)}/verdicts?limit=100`, VERDICT_PAGES),
    gpuAttestation(chipId),
    state.api.get(`/v1/chips/${encodeURIComponent(chipId)}/rtt-baseline`),
  ]);
  state.chipPage = { chip, verdicts, gpu, baseline };
  renderChipPage();
}

// The chip's GPU attestation (docs/protocol.md): null before its GPU is enrolled (404).
async function gpuAttestation(chipId) {
  try {
    return await state.api.get(`/v1/chips/${encodeURIComponent(chipId)}/attestation`);
  } catch (caught) {
    if (caught.status === 404 || caught.status === 403) return null;
    throw caught;
  }
}

function gpuAttestationText(gpu) {
  if (!gpu) return "not attested";
  return `GPU ${gpu.gpu_id}, last attested ${formatTime(gpu.last_attested_unix_ns)} (the key stays a software key)`;
}

function showLoadError(caught) {
  $("#map-status").textContent = `could not load: ${caught.message}`;
  $("#map-status").classList.add("error");
}

async function route() {
  const match = window.location.hash.match(/^#\/chip\/([A-Za-z0-9._-]{1,64})$/);
  state.route = match ? { kind: "chip", chipId: match[1] } : { kind: "overview" };
  $("#chip-page").hidden = state.route.kind !== "chip";
  $("#overview").hidden = state.route.kind === "chip";
  if (state.route.kind === "chip") {
    try {
      await showChip(state.route.chipId);
    } catch (caught) {
      if (!(caught instanceof ApiError)) throw caught;
      $("#chip-title").textContent = `${state.route.chipId}: ${caught.message}`;
    }
  } else {
    document.querySelectorAll(".landmark-marker.used").forEach((m) => m.classList.remove("used"));
    state.map.reset();
    renderOverview();
  }
}

// ---- start ----------------------------------------------------------------------------------

function askForToken(message) {
  const form = $("#login");
  form.hidden = false;
  $("#login-error").textContent = message;
  form.onsubmit = (event) => {
    event.preventDefault();
    setToken($("#login-token").value.trim());
    form.hidden = true;
    start();
  };
}

async function start() {
  const token = takeToken();
  if (!token) {
    askForToken("Open this page with ?token=… or paste a dashboard token.");
    return;
  }
  state.api = new Api(token);
  try {
    state.me = await state.api.get("/v1/me");
  } catch (caught) {
    if (!(caught instanceof ApiError) || caught.status !== 401) throw caught;
    clearToken();
    askForToken("That token was not accepted.");
    return;
  }
  const badge = $("#role-badge");
  badge.textContent = `${state.me.label} · ${state.me.role}${WRITE_ROLES.has(state.me.role) ? "" : " (read-only)"}`;
  badge.dataset.role = state.me.role;
  $("#alert-note").hidden = WRITE_ROLES.has(state.me.role);
  await Promise.all([loadFleet(), loadAlerts()]);
  renderOverview();
  openStream();
  new OperationsPanel(state.api, state.me).start(state.vocabulary.alert_types).catch(showLoadError);
  window.addEventListener("hashchange", () => route());
  await route();
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => loadFleet().catch(showLoadError), REFRESH_INTERVAL_MS);
}

async function boot() {
  // The verifier's one definition of the vocabulary; it needs no token, like the outlines.
  state.vocabulary = await fetch("/v1/vocabulary").then((response) => response.json());
  setOptions($("#filter-verdict"), state.vocabulary.chip_states);
  setOptions($("#filter-alert-type"), state.vocabulary.alert_types);
  state.map = new WorldMap($("#map"), { onChipClick: (chipId) => (window.location.hash = `#/chip/${chipId}`) });
  $("#zoom-in").addEventListener("click", () => state.map.zoomBy(1.5));
  $("#zoom-out").addEventListener("click", () => state.map.zoomBy(1 / 1.5));
  $("#zoom-reset").addEventListener("click", () => state.map.reset());
  for (const id of ["#search", "#filter-verdict", "#filter-owner", "#filter-country", "#filter-zone", "#filter-group", "#filter-alert-type", "#filter-alert-status"]) {
    for (const kind of ["input", "change"]) $(id).addEventListener(kind, () => renderOverview());
  }
  $("#download-evidence").addEventListener("click", downloadEvidence);
  $("#site-form").addEventListener("submit", (event) => {
    event.preventDefault();
    changeSite(false);
  });
  $("#site-clear").addEventListener("click", () => changeSite(true));
  // The outlines need no token, so the map draws even before sign-in.
  const countries = await fetch("/v1/map/countries.geojson").then((response) => response.json());
  state.map.setCountries(countries);
  await start();
}

boot().catch(showLoadError);
