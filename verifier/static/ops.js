// The Operations panel: zones with their verified share, notification channels and routing
// rules, mute rules, and the delivery log. Admins add channels and rules, operators (and
// admins) add and lift mutes; every role that may read sees it all. The API enforces the same
// roles (a refused form shows the API's message).

import { ApiError } from "./api.js";

const REFRESH_MS = 10_000;
const SEVERITIES = ["low", "medium", "high", "critical"];
const MUTE_SCOPES = ["chip_id", "group", "zone", "landmark_id", "alert_type"];
const $ = (selector) => document.querySelector(selector);

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function row(cells, attrs = {}) {
  const tr = el("tr", null, attrs);
  for (const cell of cells) tr.append(cell instanceof Node ? wrap(cell) : el("td", cell));
  return tr;
}

function wrap(node) {
  const td = el("td");
  td.append(node);
  return td;
}

function time(unixNs) {
  return new Date(unixNs / 1e6).toISOString().replace("T", " ").slice(0, 19);
}

function percent(share) {
  return share === null ? "—" : `${(share * 100).toFixed(0)} %`;
}

function describeRule(rule) {
  const parts = [rule.alert_types.length ? rule.alert_types.join(", ") : "every type",
    `≥ ${rule.min_severity}`];
  if (rule.zones.length) parts.push(`zones ${rule.zones.join(", ")}`);
  if (rule.groups.length) parts.push(`groups ${rule.groups.join(", ")}`);
  return `→ ${rule.channel_id}: ${parts.join("; ")}`;
}

function describeMute(mute) {
  const scope = MUTE_SCOPES.filter((key) => mute[key]).map((key) => `${key} ${mute[key]}`);
  return `${scope.join(", ")} until ${time(mute.expires_unix_ns)} UTC by ${mute.created_by}: ${mute.reason}`;
}

export class OperationsPanel {
  constructor(api, me) {
    this.api = api;
    this.canAdmin = me.role === "admin";
    this.canOperate = me.role === "admin" || me.role === "operator";
    this.timer = null;
  }

  start(alertTypes) {
    $("#operations").hidden = false;
    $("#channel-form").hidden = !this.canAdmin;
    $("#route-form").hidden = !this.canAdmin;
    $("#mute-form").hidden = !this.canOperate;
    fill($("#route-type"), ["", ...alertTypes], "any type");
    fill($("#route-severity"), SEVERITIES);
    fill($("#mute-scope"), MUTE_SCOPES);
    $("#channel-form").onsubmit = (event) => this.submit(event, () => this.addChannel());
    $("#route-form").onsubmit = (event) => this.submit(event, () => this.addRule());
    $("#mute-form").onsubmit = (event) => this.submit(event, () => this.addMute());
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh().catch((e) => this.show(e)), REFRESH_MS);
    return this.refresh();
  }

  async submit(event, action) {
    event.preventDefault();
    try {
      await action();
      event.target.reset();
      $("#ops-error").textContent = "";
      await this.refresh();
    } catch (caught) {
      this.show(caught);
    }
  }

  show(caught) {
    if (!(caught instanceof ApiError)) throw caught;
    $("#ops-error").textContent = `Refused (${caught.status}): ${caught.message}`;
  }

  addChannel() {
    const id = $("#channel-id").value.trim();
    const settings = JSON.parse($("#channel-settings").value || "{}");
    return this.api.put(`/v1/channels/${encodeURIComponent(id)}`,
      { kind: $("#channel-kind").value, settings });
  }

  addRule() {
    const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);
    const type = $("#route-type").value;
    return this.api.post("/v1/routing-rules", {
      channel_id: $("#route-channel").value,
      alert_types: type ? [type] : [],
      min_severity: $("#route-severity").value,
      zones: list($("#route-zones").value),
      groups: list($("#route-groups").value),
    });
  }

  addMute() {
    const hours = Number($("#mute-hours").value);
    const body = {
      reason: $("#mute-reason").value,
      expires_unix_ns: (Date.now() + hours * 3_600_000) * 1e6,
    };
    body[$("#mute-scope").value] = $("#mute-value").value.trim();
    return this.api.post("/v1/mutes", body);
  }

  async refresh() {
    const [zones, channels, rules, mutes, deliveries] = await Promise.all([
      this.api.get("/v1/zones"), this.api.get("/v1/channels"),
      this.api.get("/v1/routing-rules"), this.api.get("/v1/mutes?active=true"),
      this.api.get("/v1/deliveries?limit=50"),
    ]);
    $("#zones tbody").replaceChildren(
      ...zones.items.map((z) => row([`${z.name} (${z.zone_id})`, z.chips, percent(z.verified_share)],
        { "data-zone-id": z.zone_id, "data-verified-share": z.verified_share ?? "" })),
      row(["no zone", zones.unzoned.chips, percent(zones.unzoned.verified_share)]));
    fill($("#route-channel"), channels.items.map((c) => c.channel_id));
    $("#channels").replaceChildren(...channels.items.map((c) =>
      el("li", `${c.channel_id} (${c.kind})${c.enabled ? "" : " disabled"}`, { "data-channel-id": c.channel_id })));
    $("#routing").replaceChildren(...rules.items.map((r) =>
      el("li", describeRule(r), { "data-rule-id": r.rule_id })));
    $("#mutes").replaceChildren(...mutes.items.map((m) => this.muteItem(m)));
    $("#deliveries tbody").replaceChildren(...deliveries.items.map((d) => row(
      [time(d.time_unix_ns), d.destination, `${d.event} #${d.alert_id}`, d.attempt, d.outcome,
        d.status_code ?? "", d.error ?? ""],
      { "data-outcome": d.outcome, class: `delivery-${d.outcome}` })));
  }

  muteItem(mute) {
    const item = el("li", describeMute(mute), { "data-rule-id": mute.rule_id });
    if (this.canOperate) {
      const lift = el("button", "lift", { type: "button" });
      lift.onclick = () => this.api.delete(`/v1/mutes/${mute.rule_id}`)
        .then(() => this.refresh()).catch((e) => this.show(e));
      item.append(" ", lift);
    }
    return item;
  }
}

function fill(select, values, emptyLabel) {
  const current = select.value;
  select.replaceChildren(...values.map((v) => el("option", v === "" ? emptyLabel : v, { value: v })));
  if (values.includes(current)) select.value = current;
}
